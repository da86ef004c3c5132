//! Route rules: which verified tokens a protected route admits.

use super::bearer::Denial;
use super::verify::Identity;
use crate::config::RouteConfig;

/// What a route requires of a token.
#[derive(Debug, Clone)]
pub struct Policy {
    /// No token needed.
    pub public: bool,
    /// All required.
    scopes: Vec<String>,
    /// Any one required; empty = no role check.
    roles: Vec<String>,
    /// `scopes` space-joined, for the `insufficient_scope` challenge.
    scope_text: String,
}

impl Policy {
    pub fn new(route: &RouteConfig) -> Self {
        Policy {
            public: route.public,
            scopes: route.scopes.clone(),
            roles: route.roles.clone(),
            scope_text: route.scopes.join(" "),
        }
    }

    /// Admits `identity` if it has every required scope and, when roles are set, one of them.
    pub fn check(&self, identity: &Identity) -> Result<(), Denial> {
        if !self
            .scopes
            .iter()
            .all(|s| identity.grantee.scopes.contains(s))
        {
            return Err(self.insufficient("the token lacks a scope this route requires"));
        }
        if !self.roles.is_empty()
            && !self
                .roles
                .iter()
                .any(|r| identity.grantee.roles.contains(r))
        {
            return Err(self.insufficient("the token lacks a role this route requires"));
        }
        Ok(())
    }

    fn insufficient(&self, description: &'static str) -> Denial {
        Denial::InsufficientScope {
            description,
            scope: self.scope_text.clone(),
        }
    }
}
