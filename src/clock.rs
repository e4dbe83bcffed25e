//! The one wall clock of the service, at the precision the database keeps.

use chrono::{DateTime, SubsecRound, Utc};

/// Now, truncated to microseconds (the `DATETIME(6)` columns), so that what a write
/// answers is exactly what a later read returns.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}
