//! Exit codes of the `arctern` command (the README's table). The bottom layer: the engine derives
//! a failed run's code from its error kind, the daemon and the CLI return them.

/// Everything done.
pub const OK: u8 = 0;
/// Some folders or accounts failed; the rest was synced.
pub const PARTIAL: u8 = 1;
/// The config file is missing or invalid, or names no such account.
pub const CONFIG: u8 = 2;
/// Another arctern process is syncing the account.
pub const LOCKED: u8 = 3;
/// Could not connect, negotiate TLS or log in.
pub const CONNECT: u8 = 4;
/// The local side is unusable: state database or Maildir root.
pub const LOCAL: u8 = 5;

/// The code of several results together: the worst failure wins, and any failure beats a
/// partial run, which beats success.
pub fn combine(a: u8, b: u8) -> u8 {
    match (a, b) {
        (OK, x) | (x, OK) => x,
        (PARTIAL, x) | (x, PARTIAL) => x,
        (x, _) => x,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_code_wins() {
        assert_eq!(combine(OK, PARTIAL), PARTIAL);
        assert_eq!(combine(PARTIAL, CONNECT), CONNECT);
        assert_eq!(combine(LOCKED, PARTIAL), LOCKED);
        assert_eq!(combine(CONNECT, LOCAL), CONNECT);
        assert_eq!(combine(OK, OK), OK);
    }
}
