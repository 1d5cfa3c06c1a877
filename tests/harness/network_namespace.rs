//! A network namespace joined to this one by a veth pair: a process started
//! in it reaches this host at [`NetworkNamespace::host_address`] and is
//! reached at [`NetworkNamespace::inside_address`]; [`NetworkNamespace::cut`]
//! takes its link down, so its connections go silent the way a host that
//! died or lost its network does (no FIN, no RST: the far end must find
//! out by itself). Needs root (`ip netns`): as another user, `ip` runs
//! under `sudo -n -E` (passwordless sudo, as scripts/test's installs need).
//! Removed on drop.

use std::net::Ipv4Addr;
use std::process::Command;

use std::sync::atomic::{AtomicU32, Ordering};

#[derive(Debug)]
pub struct NetworkNamespace {
    pub name: String,
    host_link: String,
    inside_link: String,
    pub host_address: Ipv4Addr,
    pub inside_address: Ipv4Addr,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// `ip`, as root.
pub fn ip_command() -> Command {
    if is_root() {
        Command::new("ip")
    } else {
        let mut sudo = Command::new("sudo");
        sudo.args(["-n", "-E", "ip"]);
        sudo
    }
}

fn ip(args: &[&str]) {
    let out = ip_command()
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running ip {args:?}: {e} (install iproute2)"));
    assert!(
        out.status.success(),
        "ip {args:?}: {} (network namespaces need root)",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl NetworkNamespace {
    pub fn create() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        // A /30 of 198.18.0.0/15 (set aside for network tests, RFC 2544)
        // per namespace: four per process, placed by the process id, so
        // parallel test binaries do not collide.
        let index = (std::process::id() % 8192) * 4 + NEXT.fetch_add(1, Ordering::SeqCst) % 4;
        let base = index * 4;
        let octets = |last: u32| {
            Ipv4Addr::new(
                198,
                18 + (base >> 16) as u8,
                ((base >> 8) & 255) as u8,
                ((base & 255) + last) as u8,
            )
        };
        let tag = format!("{index:x}");
        let namespace = Self {
            name: format!("store-orders-{tag}"),
            host_link: format!("soh{tag}"),
            inside_link: format!("soi{tag}"),
            host_address: octets(1),
            inside_address: octets(2),
        };
        let _ = ip_command()
            .args(["netns", "del", &namespace.name])
            .output();
        ip(&["netns", "add", &namespace.name]);
        ip(&[
            "link",
            "add",
            &namespace.host_link,
            "type",
            "veth",
            "peer",
            "name",
            &namespace.inside_link,
        ]);
        ip(&[
            "link",
            "set",
            &namespace.inside_link,
            "netns",
            &namespace.name,
        ]);
        ip(&[
            "addr",
            "add",
            &format!("{}/30", namespace.host_address),
            "dev",
            &namespace.host_link,
        ]);
        ip(&["link", "set", &namespace.host_link, "up"]);
        let inside = ["-n", namespace.name.as_str()];
        ip(&[
            inside[0],
            inside[1],
            "addr",
            "add",
            &format!("{}/30", namespace.inside_address),
            "dev",
            &namespace.inside_link,
        ]);
        ip(&[
            inside[0],
            inside[1],
            "link",
            "set",
            &namespace.inside_link,
            "up",
        ]);
        ip(&[inside[0], inside[1], "link", "set", "lo", "up"]);
        namespace
    }

    /// A command that runs `program` inside the namespace (as root).
    pub fn command(&self, program: &str) -> tokio::process::Command {
        let ip = ip_command();
        let mut command = tokio::process::Command::new(ip.get_program());
        command
            .args(ip.get_args())
            .args(["netns", "exec", &self.name, program]);
        command
    }

    /// Takes the namespace's link down: nothing goes in or out any more,
    /// and nobody is told.
    pub fn cut(&self) {
        ip(&["-n", &self.name, "link", "set", &self.inside_link, "down"]);
    }
}

impl Drop for NetworkNamespace {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_link])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
