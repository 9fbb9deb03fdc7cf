//! Which servers this one federates with. The allow and deny lists come from the
//! configuration file, unless an operator stored lists through the admin API
//! (`federation_policy`): those then apply instead. Every process rereads the stored
//! lists each second, so an edit is in force everywhere within about two seconds; the
//! process that made the edit applies it at once.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use parley_specs::ServerName;
use parley_specs::admin_api::{PolicyLists, PolicySource};

use crate::config::FederationConfig;
use crate::error::ApiError;
use crate::store::{self, Db};

/// How often every process rereads the stored lists.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lists {
    pub allow: Option<BTreeSet<ServerName>>,
    pub deny: BTreeSet<ServerName>,
}

impl Lists {
    pub fn permits(&self, server: &ServerName) -> bool {
        !self.deny.contains(server) && self.allow.as_ref().is_none_or(|allow| allow.contains(server))
    }

    pub fn to_wire(&self) -> PolicyLists {
        PolicyLists {
            allow: self.allow.as_ref().map(|a| a.iter().cloned().collect()),
            deny: self.deny.iter().cloned().collect(),
        }
    }

    pub fn from_wire(lists: PolicyLists) -> Self {
        Self {
            allow: lists.allow.map(|a| a.into_iter().collect()),
            deny: lists.deny.into_iter().collect(),
        }
    }

    /// From the database's text arrays; a name that does not parse (edited by hand) is
    /// left out, with a warning.
    fn from_stored(allow: Option<Vec<String>>, deny: Vec<String>) -> Self {
        let parse = |names: Vec<String>| -> BTreeSet<ServerName> {
            names
                .into_iter()
                .filter_map(|name| match ServerName::parse(&name) {
                    Ok(server) => Some(server),
                    Err(error) => {
                        tracing::warn!(%name, %error, "ignoring a stored federation policy entry");
                        None
                    }
                })
                .collect()
        };
        Self {
            allow: allow.map(parse),
            deny: parse(deny),
        }
    }
}

pub struct FederationPolicy {
    config_file: Lists,
    /// The stored lists as last read; None: none are stored.
    stored: RwLock<Option<Lists>>,
}

impl FederationPolicy {
    pub fn new(config: Option<&FederationConfig>) -> Self {
        let config_file = config.map_or_else(Lists::default, |f| Lists {
            allow: f.allow.clone(),
            deny: f.deny.clone(),
        });
        Self {
            config_file,
            stored: RwLock::new(None),
        }
    }

    /// Whether this server federates with `server`, by the lists in effect.
    pub fn permits(&self, server: &ServerName) -> bool {
        let stored = self.stored.read().unwrap_or_else(|p| p.into_inner());
        stored.as_ref().unwrap_or(&self.config_file).permits(server)
    }

    pub fn config_file(&self) -> &Lists {
        &self.config_file
    }

    /// The lists in effect and where they come from.
    pub fn effective(&self) -> (Lists, PolicySource) {
        let stored = self.stored.read().unwrap_or_else(|p| p.into_inner());
        match stored.as_ref() {
            Some(lists) => (lists.clone(), PolicySource::Database),
            None => (self.config_file.clone(), PolicySource::ConfigFile),
        }
    }

    fn set(&self, lists: Option<Lists>) {
        let mut stored = self.stored.write().unwrap_or_else(|p| p.into_inner());
        if *stored != lists {
            tracing::info!(
                ?lists,
                "federation policy changed (None: the configuration file's lists)"
            );
            *stored = lists;
        }
    }

    /// Rereads the stored lists.
    pub async fn reload(&self, db: &impl Db) -> Result<(), ApiError> {
        let stored = store::federation::stored_policy(db).await?;
        self.set(stored.map(|(allow, deny)| Lists::from_stored(allow, deny)));
        Ok(())
    }

    /// Stores new lists (None: forget them, back to the configuration file's) and applies
    /// them on this process at once.
    pub async fn store(&self, db: &impl Db, lists: Option<Lists>) -> Result<(), ApiError> {
        match &lists {
            Some(lists) => {
                let allow: Option<Vec<String>> =
                    lists.allow.as_ref().map(|a| a.iter().map(|s| s.to_string()).collect());
                let deny: Vec<String> = lists.deny.iter().map(|s| s.to_string()).collect();
                store::federation::store_policy(db, allow.as_deref(), &deny).await?;
            }
            None => store::federation::forget_policy(db).await?,
        }
        self.set(lists);
        Ok(())
    }
}

/// Rereads the stored lists every `RELOAD_INTERVAL` until the process stops.
pub async fn reload_forever(policy: Arc<FederationPolicy>, pool: deadpool_postgres::Pool) {
    let mut ticker = tokio::time::interval(RELOAD_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let result = async {
            let db = pool.get().await?;
            policy.reload(&db).await
        }
        .await;
        if let Err(error) = result {
            tracing::warn!(%error, "cannot reread the federation policy; keeping the lists in effect");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> ServerName {
        ServerName::parse(s).expect("name")
    }

    #[test]
    fn stored_lists_replace_the_config_files() {
        let config = FederationConfig {
            deny: [name("bad.example")].into_iter().collect(),
            ..serde_json::from_value(serde_json::json!({"signing_key": "/k"})).expect("config")
        };
        let policy = FederationPolicy::new(Some(&config));
        assert!(!policy.permits(&name("bad.example")));
        assert!(policy.permits(&name("good.example")));
        policy.set(Some(Lists {
            allow: Some([name("good.example")].into_iter().collect()),
            deny: BTreeSet::new(),
        }));
        assert!(policy.permits(&name("good.example")));
        assert!(!policy.permits(&name("other.example")));
        assert!(!policy.permits(&name("bad.example")), "not on the allow list");
        assert_eq!(policy.effective().1, PolicySource::Database);
        policy.set(None);
        assert!(!policy.permits(&name("bad.example")));
        assert!(policy.permits(&name("other.example")));
        assert_eq!(policy.effective().1, PolicySource::ConfigFile);
    }
}
