//! Organisations: each one an issuer with its own clients and its own policy, and the snapshot
//! of all of them that the gateway serves.
//!
//! A gateway without `[organizations]` serves one organisation with the empty id: the single
//! issuer of `[issuer] issuer` and the clients of `[registry]`, with no policy of its own, so
//! every code path is the same in both modes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use super::model::{Client, Registry};

/// What an organisation's `[organization]` table says (DESIGN §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgPolicy {
    /// Display only.
    pub name: String,
    /// `false`: no tokens, and its live tokens die at the edge on the next request.
    pub enabled: bool,
    /// The scopes its clients may be granted; `None` (single issuer only): no bound.
    pub scopes: Option<Vec<String>>,
    /// Roles every token of the organisation carries, whatever its client says.
    pub default_roles: Vec<String>,
    /// A client with no role beyond the defaults gets no token.
    pub require_role: bool,
    /// Narrows the issuer's `max_token_lifetime`.
    pub max_token_lifetime: Option<Duration>,
}

impl OrgPolicy {
    /// The policy of the single issuer: none.
    pub fn unbounded() -> Self {
        OrgPolicy {
            name: String::new(),
            enabled: true,
            scopes: None,
            default_roles: Vec::new(),
            require_role: false,
            max_token_lifetime: None,
        }
    }

    /// This policy with no more access than `other` gives: both must enable it, only common
    /// scopes and default roles stay, the stricter role rule and lifetime apply.
    fn narrowed_by(&self, other: &OrgPolicy) -> OrgPolicy {
        let common = |a: &[String], b: &[String]| -> Vec<String> {
            a.iter().filter(|x| b.contains(x)).cloned().collect()
        };
        OrgPolicy {
            name: other.name.clone(),
            enabled: self.enabled && other.enabled,
            scopes: match (&self.scopes, &other.scopes) {
                (Some(a), Some(b)) => Some(common(a, b)),
                (a, b) => a.clone().or_else(|| b.clone()),
            },
            default_roles: common(&self.default_roles, &other.default_roles),
            require_role: self.require_role || other.require_role,
            max_token_lifetime: match (self.max_token_lifetime, other.max_token_lifetime) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        }
    }
}

/// One organisation: its issuer, policy and clients.
#[derive(Debug, Clone)]
pub struct Organization {
    /// `acme`; empty for the single issuer of a gateway without `[organizations]`.
    pub id: String,
    /// Its `iss`.
    pub issuer: String,
    pub policy: OrgPolicy,
    pub clients: Registry,
}

impl Organization {
    /// The `org_id` claim of its tokens (`None` for the single issuer).
    pub fn claim(&self) -> Option<&str> {
        (!self.id.is_empty()).then_some(self.id.as_str())
    }

    /// The roles a token of `client` carries: the organisation's default roles, then the
    /// client's own.
    pub fn roles_of(&self, client: &Client) -> Vec<String> {
        let mut roles = self.policy.default_roles.clone();
        roles.extend(
            client
                .roles
                .iter()
                .filter(|r| !self.policy.default_roles.contains(r))
                .cloned(),
        );
        roles
    }

    /// Whether `client` has a role of its own, beyond the organisation's defaults.
    pub fn has_own_role(&self, client: &Client) -> bool {
        client
            .roles
            .iter()
            .any(|r| !self.policy.default_roles.contains(r))
    }

    /// Every scope its clients may request, sorted (its discovery document lists them): the
    /// policy's when it has one, else every scope some client holds.
    pub fn scopes_supported(&self) -> &[String] {
        self.policy
            .scopes
            .as_deref()
            .unwrap_or(self.clients.all_scopes())
    }

    /// What stays in service when the file replacing this organisation is refused: the policy
    /// narrowed by what can be read of the new one, and the clients both grant (see
    /// [`Registry::restrict`]). Nothing is widened until the file is valid again.
    pub fn restrict(&self, policy: Option<&OrgPolicy>, readable: &Registry) -> Organization {
        Organization {
            id: self.id.clone(),
            issuer: self.issuer.clone(),
            policy: policy.map_or_else(|| self.policy.clone(), |p| self.policy.narrowed_by(p)),
            clients: self.clients.restrict(readable),
        }
    }
}

/// An immutable snapshot of every organisation, indexed by id. A reload of one organisation
/// builds a new snapshot that shares every other organisation's `Arc`.
#[derive(Debug, Clone, Default)]
pub struct Organizations {
    orgs: HashMap<String, Arc<Organization>>,
}

impl Organizations {
    /// The single issuer `issuer` with the clients of `registry`.
    pub fn single(issuer: &str, registry: Registry) -> Self {
        Organizations::new([Organization {
            id: String::new(),
            issuer: issuer.to_owned(),
            policy: OrgPolicy::unbounded(),
            clients: registry,
        }])
    }

    pub fn new(orgs: impl IntoIterator<Item = Organization>) -> Self {
        Organizations {
            orgs: orgs
                .into_iter()
                .map(|o| (o.id.clone(), Arc::new(o)))
                .collect(),
        }
    }

    /// The organisation with `id` (`""`: the single issuer).
    pub fn get(&self, id: &str) -> Option<&Arc<Organization>> {
        self.orgs.get(id)
    }

    /// Organisations sorted by id.
    pub fn sorted(&self) -> Vec<&Arc<Organization>> {
        let mut orgs: Vec<_> = self.orgs.values().collect();
        orgs.sort_by(|a, b| a.id.cmp(&b.id));
        orgs
    }

    pub fn len(&self) -> usize {
        self.orgs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.orgs.is_empty()
    }

    /// Puts `org` in place of the organisation of the same id, or adds it. (A reload edits a
    /// clone of the snapshot in service, which shares every other organisation's `Arc`.)
    pub fn insert(&mut self, org: Organization) {
        self.orgs.insert(org.id.clone(), Arc::new(org));
    }

    /// Takes the organisation `id` out.
    pub fn remove(&mut self, id: &str) -> Option<Arc<Organization>> {
        self.orgs.remove(id)
    }

    /// Every client of every organisation.
    pub fn client_count(&self) -> usize {
        self.orgs.values().map(|o| o.clients.len()).sum()
    }

    /// Organisations enabled and disabled.
    pub fn org_counts(&self) -> [usize; 2] {
        let enabled = self.orgs.values().filter(|o| o.policy.enabled).count();
        [enabled, self.orgs.len() - enabled]
    }

    /// Clients by state at `now`: `[enabled, disabled (or in a disabled organisation),
    /// expired]`.
    pub fn client_counts(&self, now: OffsetDateTime) -> [usize; 3] {
        let mut counts = [0; 3];
        for org in self.orgs.values() {
            for client in org.clients.sorted() {
                let state = if !client.enabled || !org.policy.enabled {
                    1
                } else if !client.is_active(now) {
                    2
                } else {
                    0
                };
                counts[state] += 1;
            }
        }
        counts
    }

    /// Records the gauges of this snapshot going into service (`valid`: every file is).
    pub fn count(&self, valid: bool) {
        let metrics = crate::metrics::metrics();
        metrics.population(
            self.org_counts(),
            self.client_counts(OffsetDateTime::now_utc()),
        );
        metrics.registry_applied(self.client_count(), valid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> OrgPolicy {
        OrgPolicy {
            name: "Acme".into(),
            enabled: true,
            scopes: Some(vec!["a".into(), "b".into()]),
            default_roles: vec!["member".into()],
            require_role: false,
            max_token_lifetime: Some(Duration::from_secs(600)),
        }
    }

    #[test]
    fn a_narrowed_policy_grants_no_more_than_either() {
        let mut other = policy();
        other.enabled = false;
        other.scopes = Some(vec!["b".into(), "c".into()]);
        other.default_roles = vec!["member".into(), "admin".into()];
        other.require_role = true;
        other.max_token_lifetime = Some(Duration::from_secs(1200));
        let narrowed = policy().narrowed_by(&other);
        assert!(!narrowed.enabled);
        assert_eq!(narrowed.scopes, Some(vec!["b".to_string()]));
        assert_eq!(narrowed.default_roles, ["member"]);
        assert!(narrowed.require_role);
        assert_eq!(narrowed.max_token_lifetime, Some(Duration::from_secs(600)));
    }

    #[test]
    fn default_roles_come_first_and_count_as_no_role_of_ones_own() {
        let org = Organization {
            id: "acme".into(),
            issuer: "https://x/acme".into(),
            policy: policy(),
            clients: Registry::default(),
        };
        let mut client = Client {
            id: "c".into(),
            name: "c".into(),
            scopes: vec![],
            roles: vec![],
            token_lifetime: None,
            expires: None,
            enabled: true,
            tokens_not_before: None,
            secrets: vec![],
        };
        client.roles = vec!["member".into()];
        assert!(!org.has_own_role(&client));
        assert_eq!(org.roles_of(&client), ["member"]);
        client.roles = vec!["payroll".into(), "member".into()];
        assert!(org.has_own_role(&client));
        assert_eq!(org.roles_of(&client), ["member", "payroll"]);
    }
}
