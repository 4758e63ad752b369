//! Which proxy of a fleet drives the rollouts. With SQLite there is one
//! proxy on the store and it always does. With PostgreSQL the driver is the
//! proxy holding a session-level advisory lock, on a connection of its own:
//! the lock goes with the connection, so a proxy that dies (or loses the
//! database) lets go of it at once, and another one, trying every tick,
//! takes over within seconds and continues from the state in the store.

use std::time::Duration;

use log::{info, warn};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// The advisory lock's key: "STRNGLR" and a 1, so that it does not collide
/// with an application's own locks on a shared server.
const LOCK_KEY: i64 = 0x5354_524e_474c_5201;

/// How long one call to the database may take before the lease counts as
/// lost.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub enum Lease {
    /// The only proxy on its store (SQLite).
    Alone,
    /// A fleet on PostgreSQL: a connection of this proxy's own (kept
    /// between ticks, so a proxy that waits does not reconnect every
    /// second), and whether it holds the lock.
    Shared {
        url: String,
        conn: Option<PgConnection>,
        held: bool,
    },
}

impl Lease {
    pub fn for_store(url: &str) -> Lease {
        if url.starts_with("postgres") {
            Lease::Shared {
                url: url.to_string(),
                conn: None,
                held: false,
            }
        } else {
            Lease::Alone
        }
    }

    /// Whether this proxy drives the rollouts now: keeps the lock it holds
    /// (checking its connection still answers), or tries to take it.
    pub async fn hold(&mut self) -> bool {
        let Lease::Shared { url, conn, held } = self else {
            return true;
        };
        if conn.is_none() {
            match tokio::time::timeout(CALL_TIMEOUT, PgConnection::connect(url)).await {
                Ok(Ok(c)) => *conn = Some(c),
                Ok(Err(e)) => {
                    warn!("rollouts: cannot reach the database for the driver's lock: {e}");
                    return false;
                }
                Err(_) => return false,
            }
        }
        let c = conn.as_mut().expect("connected above");
        let answer = if *held {
            tokio::time::timeout(CALL_TIMEOUT, sqlx::query("SELECT 1").execute(&mut *c))
                .await
                .map(|r| r.map(|_| true))
        } else {
            tokio::time::timeout(
                CALL_TIMEOUT,
                sqlx::query_as::<_, (bool,)>("SELECT pg_try_advisory_lock($1)")
                    .bind(LOCK_KEY)
                    .fetch_one(&mut *c),
            )
            .await
            .map(|r| r.map(|(got,)| got))
        };
        match answer {
            Ok(Ok(true)) => {
                if !*held {
                    info!("rollouts: this proxy drives the rollouts of the fleet");
                }
                *held = true;
                true
            }
            Ok(Ok(false)) => false,
            _ => {
                if *held {
                    warn!(
                        "rollouts: lost the database connection holding the driver's lock; another proxy may drive now"
                    );
                }
                // The lock, if it was held, went with the connection.
                *conn = None;
                *held = false;
                false
            }
        }
    }
}
