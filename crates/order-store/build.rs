//! `sqlx::migrate!` embeds the migrations at compile time: rebuild this
//! crate whenever one is added or changed, or a build would carry an old
//! set (seen: a new migration missing from an incremental test build).
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
