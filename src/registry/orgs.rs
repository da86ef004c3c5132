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

/// How many organisations and clients are in each state, for the gauges: `[enabled,
/// disabled]` organisations, `[enabled, disabled (or of a disabled organisation), expired]`
/// clients, as of when each organisation went into the snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub orgs: [usize; 2],
    pub clients: [usize; 3],
}

impl Tally {
    fn of(org: &Organization, now: OffsetDateTime) -> Tally {
        let mut tally = Tally::default();
        tally.orgs[usize::from(!org.policy.enabled)] = 1;
        for client in org.clients.iter() {
            let state = if !client.enabled || !org.policy.enabled {
                1
            } else if !client.is_active(now) {
                2
            } else {
                0
            };
            tally.clients[state] += 1;
        }
        tally
    }

    fn add(&mut self, other: Tally, sign: isize) {
        let apply = |a: &mut usize, b: usize| *a = a.saturating_add_signed(sign * b as isize);
        for (a, b) in self.orgs.iter_mut().zip(other.orgs) {
            apply(a, b);
        }
        for (a, b) in self.clients.iter_mut().zip(other.clients) {
            apply(a, b);
        }
    }

    /// Every client, whatever its state.
    pub fn client_total(&self) -> usize {
        self.clients.iter().sum()
    }
}

/// An immutable snapshot of every organisation, indexed by id. A reload of one organisation
/// edits a clone of it that shares every other organisation's `Arc`, and keeps the [`Tally`]
/// up to date as it goes, so its cost does not grow with the number of clients.
#[derive(Debug, Clone, Default)]
pub struct Organizations {
    /// Keys are shared strings, so cloning the map for a reload copies no id.
    orgs: HashMap<Arc<str>, (Arc<Organization>, Tally)>,
    tally: Tally,
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
        let mut all = Organizations::default();
        for org in orgs {
            all.insert(org);
        }
        all
    }

    /// The organisation with `id` (`""`: the single issuer).
    pub fn get(&self, id: &str) -> Option<&Arc<Organization>> {
        self.orgs.get(id).map(|(org, _)| org)
    }

    pub fn len(&self) -> usize {
        self.orgs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.orgs.is_empty()
    }

    /// Puts `org` in place of the organisation of the same id, or adds it.
    pub fn insert(&mut self, org: Organization) {
        let tally = Tally::of(&org, OffsetDateTime::now_utc());
        self.tally.add(tally, 1);
        if let Some((_, old)) = self
            .orgs
            .insert(Arc::from(org.id.as_str()), (Arc::new(org), tally))
        {
            self.tally.add(old, -1);
        }
    }

    /// Takes the organisation `id` out.
    pub fn remove(&mut self, id: &str) -> Option<Arc<Organization>> {
        let (org, tally) = self.orgs.remove(id)?;
        self.tally.add(tally, -1);
        Some(org)
    }

    /// Organisations and clients by state.
    pub fn tally(&self) -> Tally {
        self.tally
    }

    /// Every client of every organisation.
    pub fn client_count(&self) -> usize {
        self.tally.client_total()
    }

    /// Records the gauges of this snapshot going into service (`valid`: every file is).
    pub fn count(&self, valid: bool) {
        let metrics = crate::metrics::metrics();
        metrics.population(self.tally.orgs, self.tally.clients);
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
    fn the_tally_follows_inserts_and_removals() {
        let org = |id: &str, enabled: bool, clients: &[(&str, bool)]| Organization {
            id: id.into(),
            issuer: String::new(),
            policy: OrgPolicy {
                enabled,
                ..policy()
            },
            clients: Registry::new(clients.iter().map(|(c, on)| Client {
                enabled: *on,
                ..client(c)
            })),
        };
        let mut orgs = Organizations::new([
            org("a", true, &[("x", true), ("y", false)]),
            org("b", false, &[("x", true)]),
        ]);
        assert_eq!(
            orgs.tally(),
            Tally {
                orgs: [1, 1],
                clients: [1, 2, 0]
            }
        );
        orgs.insert(org("a", true, &[("x", true)]));
        assert_eq!(
            orgs.tally(),
            Tally {
                orgs: [1, 1],
                clients: [1, 1, 0]
            }
        );
        orgs.remove("b");
        assert_eq!(
            orgs.tally(),
            Tally {
                orgs: [1, 0],
                clients: [1, 0, 0]
            }
        );
        assert_eq!(orgs.client_count(), 1);
        assert!(orgs.remove("b").is_none());
        assert_eq!(orgs.client_count(), 1);
    }

    fn client(id: &str) -> Client {
        Client {
            id: id.into(),
            name: id.into(),
            scopes: vec![],
            roles: vec![],
            token_lifetime: None,
            expires: None,
            enabled: true,
            tokens_not_before: None,
            secrets: vec![],
        }
    }

    #[test]
    fn default_roles_come_first_and_count_as_no_role_of_ones_own() {
        let org = Organization {
            id: "acme".into(),
            issuer: "https://x/acme".into(),
            policy: policy(),
            clients: Registry::default(),
        };
        let mut client = client("c");
        client.roles = vec!["member".into()];
        assert!(!org.has_own_role(&client));
        assert_eq!(org.roles_of(&client), ["member"]);
        client.roles = vec!["payroll".into(), "member".into()];
        assert!(org.has_own_role(&client));
        assert_eq!(org.roles_of(&client), ["member", "payroll"]);
    }
}
