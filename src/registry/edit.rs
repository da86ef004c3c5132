//! Edits of registry files that keep everything the edit does not touch — comments, order,
//! formatting, unknown tables — as the operator wrote it (toml_edit).

use time::OffsetDateTime;
use toml_edit::{value, Array, ArrayOfTables, DocumentMut, Item, Table};

use super::model::{secret_reference, Client, Secret};
use super::orgs::OrgPolicy;
use crate::timefmt::{format_duration, format_instant};

/// One registry file, open for editing.
pub struct RegistryDocument {
    doc: DocumentMut,
}

impl RegistryDocument {
    pub fn parse(text: &str) -> Result<Self, String> {
        text.parse::<DocumentMut>()
            .map(|doc| RegistryDocument { doc })
            .map_err(|e| e.to_string())
    }

    pub fn render(&self) -> String {
        self.doc.to_string()
    }

    /// Whether the file defines no client.
    pub fn is_empty(&self) -> bool {
        self.clients().is_none_or(|clients| clients.is_empty())
    }

    pub fn contains(&self, id: &str) -> bool {
        self.position(id).is_some()
    }

    /// Appends `client` with its secrets.
    pub fn add_client(&mut self, client: &Client) -> Result<(), String> {
        if self.contains(&client.id) {
            return Err(format!("a client with id {:?} already exists", client.id));
        }
        let mut table = Table::new();
        table["id"] = value(&client.id);
        table["name"] = value(&client.name);
        table["scopes"] = value(Array::from_iter(&client.scopes));
        table["roles"] = value(Array::from_iter(&client.roles));
        if let Some(lifetime) = client.token_lifetime {
            table["token_lifetime"] = value(format_duration(lifetime));
        }
        if let Some(expires) = client.expires {
            table["expires"] = value(format_instant(expires));
        }
        table["enabled"] = value(client.enabled);
        if let Some(instant) = client.tokens_not_before {
            table["tokens_not_before"] = value(format_instant(instant));
        }
        let mut secrets = ArrayOfTables::new();
        for secret in &client.secrets {
            secrets.push(secret_table(secret));
        }
        table.insert("secret", Item::ArrayOfTables(secrets));
        // Comments after the last table belong to the document's trailing text, which
        // toml_edit prints after every table; keep them above the client we append.
        let trailing = self.doc.trailing().as_str().unwrap_or("").to_owned();
        if !trailing.trim().is_empty() {
            table
                .decor_mut()
                .set_prefix(format!("{}\n", trailing.trim_end()) + "\n");
            self.doc.set_trailing("");
        }
        self.clients_or_create()?.push(table);
        Ok(())
    }

    pub fn remove_client(&mut self, id: &str) -> Result<(), String> {
        let index = self.require(id)?;
        self.clients_or_create()?.remove(index);
        Ok(())
    }

    pub fn set_enabled(&mut self, id: &str, enabled: bool) -> Result<(), String> {
        self.client_mut(id)?["enabled"] = value(enabled);
        Ok(())
    }

    /// Revokes every token issued to `id` before `instant`.
    pub fn set_tokens_not_before(
        &mut self,
        id: &str,
        instant: OffsetDateTime,
    ) -> Result<(), String> {
        self.client_mut(id)?["tokens_not_before"] = value(format_instant(instant));
        Ok(())
    }

    /// Adds a secret beside the existing ones (the overlap of a zero-downtime rotation).
    pub fn add_secret(&mut self, id: &str, secret: &Secret) -> Result<(), String> {
        self.secrets_mut(id)?.push(secret_table(secret));
        Ok(())
    }

    /// Replaces every secret of `id` with `secret`.
    pub fn replace_secrets(&mut self, id: &str, secret: &Secret) -> Result<(), String> {
        let secrets = self.secrets_mut(id)?;
        secrets.clear();
        secrets.push(secret_table(secret));
        Ok(())
    }

    /// Removes the secret of client `id` whose id (see [`Secret::id`]) is `reference`.
    pub fn remove_secret(&mut self, id: &str, reference: &str) -> Result<(), String> {
        let secrets = self.secrets_mut(id)?;
        let index = secrets
            .iter()
            .position(|s| match s.get("id").and_then(|i| i.as_str()) {
                Some(written) => written == reference,
                None => s
                    .get("hash")
                    .and_then(|h| h.as_str())
                    .is_some_and(|hash| secret_reference(hash) == reference),
            })
            .ok_or_else(|| {
                format!(
                    "client {id:?} has no secret {reference:?} (see `credgate client show {id}`)"
                )
            })?;
        if secrets.len() == 1 {
            return Err(format!(
                "{reference:?} is the only secret of {id:?}; a client needs one (use `credgate secret rotate {id}`)"
            ));
        }
        secrets.remove(index);
        Ok(())
    }

    /// A new organisation file: its `[organization]` table, and no clients yet.
    pub fn new_organization(policy: &OrgPolicy) -> RegistryDocument {
        let mut table = Table::new();
        table["name"] = value(&policy.name);
        table["enabled"] = value(policy.enabled);
        table["scopes"] = value(Array::from_iter(policy.scopes.iter().flatten()));
        table["default_roles"] = value(Array::from_iter(&policy.default_roles));
        table["require_role"] = value(policy.require_role);
        if let Some(max) = policy.max_token_lifetime {
            table["max_token_lifetime"] = value(format_duration(max));
        }
        let mut doc = DocumentMut::new();
        doc.insert("organization", Item::Table(table));
        RegistryDocument { doc }
    }

    /// Sets `enabled` in the `[organization]` table.
    pub fn set_organization_enabled(&mut self, enabled: bool) -> Result<(), String> {
        self.set_organization_field("enabled", Some(enabled.into()))
    }

    /// Sets field `key` of the `[organization]` table to `to`, or removes it (`None`).
    pub fn set_organization_field(
        &mut self,
        key: &str,
        to: Option<toml_edit::Value>,
    ) -> Result<(), String> {
        let table = self
            .doc
            .get_mut("organization")
            .and_then(Item::as_table_like_mut)
            .ok_or("the file has no [organization] table")?;
        match to {
            Some(v) => {
                table.insert(key, Item::Value(v));
            }
            None => {
                table.remove(key);
            }
        }
        Ok(())
    }

    /// Sets field `key` of client `id` to `to`, or removes it (`None`: the default applies).
    pub fn set_client_field(
        &mut self,
        id: &str,
        key: &str,
        to: Option<toml_edit::Value>,
    ) -> Result<(), String> {
        let table = self.client_mut(id)?;
        match to {
            Some(v) => table[key] = Item::Value(v),
            None => {
                table.remove(key);
            }
        }
        Ok(())
    }

    /// How many `[[client]]` tables the file has.
    pub fn client_count(&self) -> usize {
        self.clients().map_or(0, ArrayOfTables::len)
    }

    fn clients(&self) -> Option<&ArrayOfTables> {
        self.doc.get("client").and_then(Item::as_array_of_tables)
    }

    fn clients_or_create(&mut self) -> Result<&mut ArrayOfTables, String> {
        self.doc
            .entry("client")
            .or_insert_with(|| Item::ArrayOfTables(ArrayOfTables::new()))
            .as_array_of_tables_mut()
            .ok_or_else(|| "`client` is not an array of tables ([[client]])".to_string())
    }

    fn position(&self, id: &str) -> Option<usize> {
        self.clients()?
            .iter()
            .position(|t| t.get("id").and_then(Item::as_str) == Some(id))
    }

    fn require(&self, id: &str) -> Result<usize, String> {
        self.position(id)
            .ok_or_else(|| format!("no client with id {id:?}"))
    }

    fn client_mut(&mut self, id: &str) -> Result<&mut Table, String> {
        let index = self.require(id)?;
        self.clients_or_create()?
            .get_mut(index)
            .ok_or_else(|| format!("no client with id {id:?}"))
    }

    fn secrets_mut(&mut self, id: &str) -> Result<&mut ArrayOfTables, String> {
        self.client_mut(id)?
            .entry("secret")
            .or_insert_with(|| Item::ArrayOfTables(ArrayOfTables::new()))
            .as_array_of_tables_mut()
            .ok_or_else(|| format!("client {id:?}: `secret` is not an array of tables"))
    }
}

fn secret_table(secret: &Secret) -> Table {
    let mut table = Table::new();
    table["id"] = value(&secret.id);
    table["description"] = value(&secret.description);
    table["hash"] = value(&secret.hash);
    if let Some(expires) = secret.expires {
        table["expires"] = value(format_instant(expires));
    }
    if let Some(created) = secret.created {
        table["created"] = value(format_instant(created));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH_A: &str = "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAsalt$aGFzaA";
    const HASH_B: &str = "$argon2id$v=19$m=19456,t=2,p=1$BBBBBBBBsalt$aGFzaA";

    fn secret(hash: &str) -> Secret {
        Secret {
            id: secret_reference(hash),
            description: "d".into(),
            hash: hash.into(),
            expires: None,
            created: None,
        }
    }

    fn new_client(id: &str) -> Client {
        Client {
            id: id.into(),
            name: "Name".into(),
            scopes: vec!["a.read".into()],
            roles: vec![],
            token_lifetime: Some(std::time::Duration::from_secs(900)),
            expires: None,
            enabled: true,
            tokens_not_before: None,
            secrets: vec![secret(HASH_A)],
        }
    }

    const EXISTING: &str = "# registry of the demo\n\n[[client]]\nid = \"old\" # keep me\nname = \"Old\"\nenabled = true\n\n[[client.secret]]\nhash = \"x\"\n";

    #[test]
    fn adding_keeps_comments_and_nests_the_secret() {
        let mut doc = RegistryDocument::parse(EXISTING).unwrap();
        doc.add_client(&new_client("new")).unwrap();
        let text = doc.render();
        assert!(text.starts_with(EXISTING), "{text}");
        assert!(text.ends_with(&format!(
            "[[client]]\nid = \"new\"\nname = \"Name\"\nscopes = [\"a.read\"]\nroles = []\ntoken_lifetime = \"15m\"\nenabled = true\n\n[[client.secret]]\nid = \"AAAAAAAA\"\ndescription = \"d\"\nhash = \"{HASH_A}\"\n"
        )), "{text}");
        assert!(doc
            .add_client(&new_client("new"))
            .unwrap_err()
            .contains("already exists"));
    }

    #[test]
    fn comments_of_a_file_without_clients_stay_on_top() {
        let header = "# the registry\n# of the demo\n";
        let mut doc = RegistryDocument::parse(header).unwrap();
        doc.add_client(&new_client("n")).unwrap();
        assert!(
            doc.render()
                .starts_with(&format!("{header}\n[[client]]\nid = \"n\"")),
            "{}",
            doc.render()
        );
    }

    #[test]
    fn adding_to_an_empty_file_works() {
        let mut doc = RegistryDocument::parse("").unwrap();
        doc.add_client(&new_client("n")).unwrap();
        assert!(
            doc.render().starts_with("[[client]]\nid = \"n\""),
            "{}",
            doc.render()
        );
    }

    #[test]
    fn enable_disable_and_remove_touch_only_their_client() {
        let mut doc = RegistryDocument::parse(EXISTING).unwrap();
        doc.add_client(&new_client("new")).unwrap();
        doc.set_enabled("old", false).unwrap();
        assert!(doc
            .render()
            .contains("id = \"old\" # keep me\nname = \"Old\"\nenabled = false\n"));
        doc.set_tokens_not_before("old", time::macros::datetime!(2026-11-23 10:00 UTC))
            .unwrap();
        assert!(doc
            .render()
            .contains("enabled = false\ntokens_not_before = \"2026-11-23T10:00:00Z\"\n"));
        doc.remove_client("new").unwrap();
        assert_eq!(
            doc.render(),
            EXISTING.replace(
                "enabled = true",
                "enabled = false
tokens_not_before = \"2026-11-23T10:00:00Z\""
            )
        );
        assert!(doc
            .set_enabled("ghost", true)
            .unwrap_err()
            .contains("no client"));
    }

    #[test]
    fn secrets_are_added_removed_by_reference_and_replaced() {
        let mut doc = RegistryDocument::parse("").unwrap();
        doc.add_client(&new_client("c")).unwrap();
        assert!(doc
            .remove_secret("c", "AAAAAAAA")
            .unwrap_err()
            .contains("only secret"));
        doc.add_secret("c", &secret(HASH_B)).unwrap();
        doc.remove_secret("c", "AAAAAAAA").unwrap();
        assert!(!doc.render().contains(HASH_A) && doc.render().contains(HASH_B));
        assert!(doc
            .remove_secret("c", "nope")
            .unwrap_err()
            .contains("no secret"));
        doc.replace_secrets("c", &secret(HASH_A)).unwrap();
        assert!(doc.render().contains(HASH_A) && !doc.render().contains(HASH_B));
    }
}
