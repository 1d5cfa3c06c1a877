/// `url` (a PostgreSQL URL) naming `database` instead of its own: same
/// server, credentials and parameters. For tools that create databases next
/// to the one they were given (tests, benchmarks).
pub fn with_database(url: &str, database: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let path = url[scheme_end..]
        .find('/')
        .map_or(url.len(), |i| scheme_end + i);
    let query = url[path..].find('?').map_or("", |i| &url[path + i..]);
    format!("{}/{database}{query}", &url[..path])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_replaces_only_the_database() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres?sslmode=require", "shop"),
            "postgres://u:p@h:5432/shop?sslmode=require"
        );
        assert_eq!(with_database("postgres://h", "shop"), "postgres://h/shop");
        assert_eq!(
            with_database("postgres://h/a/b", "shop"),
            "postgres://h/shop"
        );
    }
}
