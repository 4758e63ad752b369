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
    /// A fleet on PostgreSQL: the connection holding the lock, if this
    /// proxy holds it.
    Shared {
        url: String,
        held: Option<PgConnection>,
    },
}

impl Lease {
    pub fn for_store(url: &str) -> Lease {
        if url.starts_with("postgres") {
            Lease::Shared {
                url: url.to_string(),
                held: None,
            }
        } else {
            Lease::Alone
        }
    }

    /// Whether this proxy drives the rollouts now: keeps the lock it holds
    /// (checking its connection still answers), or tries to take it.
    pub async fn hold(&mut self) -> bool {
        let Lease::Shared { url, held } = self else {
            return true;
        };
        if let Some(conn) = held {
            let alive =
                tokio::time::timeout(CALL_TIMEOUT, sqlx::query("SELECT 1").execute(&mut *conn))
                    .await;
            if matches!(alive, Ok(Ok(_))) {
                return true;
            }
            warn!(
                "rollouts: lost the database connection holding the driver's lock; another proxy may drive now"
            );
            *held = None;
            return false;
        }
        let taken = tokio::time::timeout(CALL_TIMEOUT, async {
            let mut conn = PgConnection::connect(url).await?;
            let (got,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_lock($1)")
                .bind(LOCK_KEY)
                .fetch_one(&mut conn)
                .await?;
            Ok::<_, sqlx::Error>(got.then_some(conn))
        })
        .await;
        match taken {
            Ok(Ok(Some(conn))) => {
                info!("rollouts: this proxy drives the rollouts of the fleet");
                *held = Some(conn);
                true
            }
            Ok(Ok(None)) => false,
            Ok(Err(e)) => {
                warn!("rollouts: cannot reach the database for the driver's lock: {e}");
                false
            }
            Err(_) => false,
        }
    }
}
