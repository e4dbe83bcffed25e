//! The one wall clock of the replica, at the precision the database keeps. It stamps
//! what is written (`created_at`); every expiry and window that replicas share is
//! measured by the database's clock instead (`store::database_now`, `UTC_TIMESTAMP(6)`),
//! so a replica whose clock is wrong steals nothing.

use chrono::{DateTime, SubsecRound, Utc};
use std::sync::atomic::{AtomicI64, Ordering};

/// How far this process's clock is off, in microseconds: 0 but in tests.
static SKEW_MICROS: AtomicI64 = AtomicI64::new(0);

/// Now, truncated to microseconds (the `DATETIME(6)` columns), so that what a write
/// answers is exactly what a later read returns.
pub fn now() -> DateTime<Utc> {
    let skew = chrono::Duration::microseconds(SKEW_MICROS.load(Ordering::Relaxed));
    (Utc::now() + skew).trunc_subsecs(6)
}

/// Makes this process a replica whose clock is `skew` off, for tests that show nothing
/// shared depends on it. Process-wide: such a test runs in a test binary of its own.
#[doc(hidden)]
pub fn skew_for_tests(skew: chrono::Duration) {
    SKEW_MICROS.store(skew.num_microseconds().unwrap_or(0), Ordering::Relaxed);
}
