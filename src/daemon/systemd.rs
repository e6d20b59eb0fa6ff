//! systemd's notification protocol (sd_notify), written out because it is one datagram: when
//! `NOTIFY_SOCKET` is set (a `Type=notify` unit), tell the service manager we are ready, what we
//! are doing, and that we are stopping. Without it these calls do nothing.

use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Sends `state` (e.g. `READY=1`) to the service manager, if there is one. Failures are only
/// logged: the daemon works the same without systemd.
pub fn notify(state: &str) {
    if let Some(path) = std::env::var_os("NOTIFY_SOCKET") {
        let path = path.to_string_lossy().to_string();
        if let Err(e) = notify_to(&path, state) {
            tracing::debug!("sd_notify to {path}: {e}");
        }
    }
}

/// Sends `state` to the notification socket at `path` (`@name` for an abstract socket).
pub fn notify_to(path: &str, state: &str) -> std::io::Result<()> {
    let addr = if let Some(name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        SocketAddr::from_abstract_name(name.as_bytes())?
    } else {
        SocketAddr::from_pathname(path)?
    };
    let socket = UnixDatagram::unbound()?;
    socket.send_to_addr(state.as_bytes(), &addr)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ready_datagram_reaches_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        notify_to(path.to_str().unwrap(), "READY=1\nSTATUS=ready").unwrap();
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=ready");
        assert!(notify_to(dir.path().join("absent").to_str().unwrap(), "READY=1").is_err());
    }
}
