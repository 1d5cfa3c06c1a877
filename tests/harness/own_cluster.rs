//! A PostgreSQL cluster of the test's own, to stop abruptly without
//! disturbing anyone else's: initdb into a temporary directory, pg_ctl to
//! start and stop it. Needs PostgreSQL's server binaries (the test command
//! installs them where none are reachable).

use std::path::PathBuf;
use std::process::Command;

use crate::service_process::free_port;

#[derive(Debug)]
pub struct OwnCluster {
    dir: PathBuf,
    bin: PathBuf,
    pub port: u16,
    /// Extra `-c name=value` settings of every start.
    settings: Vec<String>,
}

/// The newest installed server's binary directory.
pub fn server_binaries() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .filter(|p| p.join("pg_ctl").exists())
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions.pop().expect(
        "PostgreSQL server binaries (pg_ctl, initdb) are needed under /usr/lib/postgresql/*/bin: apt-get install postgresql",
    )
}

/// PostgreSQL refuses to run as root: as root, run its tools as `postgres`.
fn run(program: &PathBuf, args: &[&str]) -> std::process::Output {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false);
    let output = if is_root {
        Command::new("runuser")
            .arg("-u")
            .arg("postgres")
            .arg("--")
            .arg(program)
            .args(args)
            .output()
    } else {
        Command::new(program).args(args).output()
    };
    output.unwrap_or_else(|e| panic!("running {}: {e}", program.display()))
}

impl OwnCluster {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A cluster started with these extra settings (`name=value`), e.g.
    /// `shared_preload_libraries=citus`.
    pub fn start_with(settings: &[&str]) -> Self {
        Self::start_trying_port_first(free_port(), settings)
    }

    /// As [`Self::start_with`], trying `port` first (another one if it is
    /// taken).
    pub fn start_trying_port_first(port: u16, settings: &[&str]) -> Self {
        Self::start_full(port, settings, &[])
    }

    /// A cluster a client in `namespace` can reach too (at the namespace's
    /// host address, trusted like the loopback).
    pub fn start_reachable_from(namespace: &crate::network_namespace::NetworkNamespace) -> Self {
        let listen = format!("listen_addresses=127.0.0.1,{}", namespace.host_address);
        let hba = format!("host all all {}/32 trust", namespace.inside_address);
        Self::start_full(free_port(), &[listen.as_str()], &[hba.as_str()])
    }

    fn start_full(port: u16, settings: &[&str], hba: &[&str]) -> Self {
        let bin = server_binaries();
        let dir =
            std::env::temp_dir().join(format!("store-orders-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let is_root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout.starts_with(b"0"))
            .unwrap_or(false);
        if is_root {
            let chown = Command::new("chown")
                .arg("postgres:postgres")
                .arg(&dir)
                .status()
                .unwrap();
            assert!(chown.success());
        }
        let data = dir.join("data");
        let data = data.to_str().unwrap();
        let out = run(
            &bin.join("initdb"),
            &["-D", data, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if !hba.is_empty() {
            use std::io::Write as _;
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(std::path::Path::new(data).join("pg_hba.conf"))
                .unwrap();
            for line in hba {
                writeln!(file, "{line}").unwrap();
            }
        }
        let mut cluster = Self {
            dir,
            bin,
            port,
            settings: settings.iter().map(|s| (*s).to_owned()).collect(),
        };
        // PostgreSQL cannot bind port 0 (the port names its socket file): a
        // port is picked here and bound by the server, and when something
        // took it in between, the start is retried on another.
        let mut attempts = 0;
        loop {
            match cluster.try_start() {
                Ok(()) => return cluster,
                Err(failure) if failure.port_taken && attempts < 5 => {
                    attempts += 1;
                    eprintln!(
                        "port {} was taken before PostgreSQL bound it: another port",
                        cluster.port
                    );
                    cluster.port = free_port();
                }
                Err(failure) => panic!("pg_ctl start: {}", failure.message),
            }
        }
    }

    /// Starts the (stopped) cluster on its port and waits until it accepts
    /// connections (its clients know the port: no other is tried).
    pub fn start_again(&self) {
        if let Err(failure) = self.try_start() {
            panic!("pg_ctl start: {}", failure.message);
        }
    }

    fn try_start(&self) -> Result<(), StartFailure> {
        let data = self.dir.join("data");
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=50",
            self.port,
            self.dir.display()
        );
        for setting in &self.settings {
            options.push_str(&format!(" -c {setting}"));
        }
        let log = self.dir.join("log");
        let logged_before = std::fs::read_to_string(&log).map_or(0, |l| l.len());
        let out = run(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        if out.status.success() {
            return Ok(());
        }
        let logged = std::fs::read_to_string(&log).unwrap_or_default();
        let this_start = logged.get(logged_before..).unwrap_or_default();
        Err(StartFailure {
            port_taken: this_start.contains("Address already in use"),
            message: format!("{}\n{this_start}", String::from_utf8_lossy(&out.stderr)),
        })
    }

    /// `pg_ctl stop -m immediate`: the server dies as in a crash; committed
    /// transactions must survive (recovery from the WAL at the next start).
    pub fn stop_immediately(&self) {
        let data = self.dir.join("data");
        let out = run(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates `database`, applies the migrations, and answers a pool of it.
    pub async fn migrated_database(&self, database: &str) -> sqlx::PgPool {
        use sqlx::Connection as _;
        let mut admin = sqlx::PgConnection::connect(&self.url("postgres"))
            .await
            .unwrap();
        sqlx::query(&format!("CREATE DATABASE {database}"))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();
        let pool = sqlx::PgPool::connect(&self.url(database)).await.unwrap();
        order_store::MIGRATOR.run(&pool).await.unwrap();
        pool
    }

    /// The URL of `database` as a client in `namespace` reaches it.
    pub fn url_from(
        &self,
        namespace: &crate::network_namespace::NetworkNamespace,
        database: &str,
    ) -> String {
        format!(
            "postgres://postgres@{}:{}/{database}",
            namespace.host_address, self.port
        )
    }
}

/// Why `pg_ctl start` failed: its error and the server's log of that start.
struct StartFailure {
    port_taken: bool,
    message: String,
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = run(
            &self.bin.join("pg_ctl"),
            &["-D", data.to_str().unwrap_or(""), "-m", "immediate", "stop"],
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
