//! Reading another sync tool's SQLite files (offlineimap's `LocalStatus-sqlite`), read-only,
//! for adopting its Maildir. Never written: the other tool may still be in use.

use crate::model::Flags;
use rusqlite::{Connection, OpenFlags};
use std::collections::BTreeMap;
use std::path::Path;

/// The flags offlineimap recorded per server UID at its last sync (`status` table: `id`,
/// `flags`). The error names the file.
pub fn offlineimap_status(path: &Path) -> Result<BTreeMap<u32, Flags>, String> {
    let fail = |e: rusqlite::Error| format!("{}: {e}", path.display());
    let db = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(fail)?;
    let mut stmt = db.prepare("SELECT id, flags FROM status").map_err(fail)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?))
        })
        .map_err(fail)?;
    let mut out = BTreeMap::new();
    for row in rows {
        let (id, flags) = row.map_err(fail)?;
        let Ok(uid) = u32::try_from(id) else {
            return Err(format!("{}: UID {id} is out of range", path.display()));
        };
        out.insert(
            uid,
            Flags::from_maildir_letters(flags.as_deref().unwrap_or("")),
        );
    }
    Ok(out)
}
