//! Component libraries (docs/reference/query-api.md §6–7): the names of the component ids agents
//! report, as trace spans and topology nodes show them, their priorities, and the server a client
//! library talks to. The table is `components.txt`, compiled in.

use std::collections::HashMap;
use std::sync::LazyLock;

/// The priority of a component the table gives none.
const DEFAULT_PRIORITY: u8 = 50;

/// The table, read once.
pub struct Components {
    by_id: HashMap<i32, (String, u8)>,
    servers: HashMap<String, String>,
}

static TABLE: LazyLock<Components> = LazyLock::new(|| Components::parse(include_str!("components.txt")));

impl Components {
    /// The compiled-in table.
    pub fn shipped() -> &'static Components {
        &TABLE
    }

    /// Reads `id name [priority]` lines and `client -> server` lines; `#` starts a comment.
    /// The table is part of the source, so a malformed line is a bug.
    fn parse(text: &str) -> Self {
        let mut by_id = HashMap::new();
        let mut servers = HashMap::new();
        for line in text.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with('#')) {
            if let Some((client, server)) = line.split_once(" -> ") {
                servers.insert(client.trim().to_owned(), server.trim().to_owned());
                continue;
            }
            let mut words = line.split_whitespace();
            let (Some(id), Some(name)) = (words.next().and_then(|id| id.parse().ok()), words.next()) else {
                panic!("components.txt: `{line}` is not `id name [priority]`");
            };
            let priority = words.next().and_then(|priority| priority.parse().ok()).unwrap_or(DEFAULT_PRIORITY);
            by_id.insert(id, (name.to_owned(), priority));
        }
        Self { by_id, servers }
    }

    /// The name of `id`; `Unknown` for an id the table lacks.
    pub fn name(&self, id: i32) -> &str {
        self.by_id.get(&id).map_or("Unknown", |(name, _)| name)
    }

    /// The priority of `id`.
    pub fn priority(&self, id: i32) -> u8 {
        self.by_id.get(&id).map_or(DEFAULT_PRIORITY, |(_, priority)| *priority)
    }

    /// The server name a client component talks to, or its own name when it has no mapping.
    pub fn server_name(&self, id: i32) -> &str {
        let name = self.name(id);
        self.servers.get(name).map_or(name, String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_the_components_agents_use() {
        let table = Components::shipped();
        assert_eq!(table.name(7001), "Flask");
        assert_eq!(table.name(7002), "Requests");
        assert_eq!(table.name(5), "Mysql");
        assert_eq!(table.name(11000), "Rust");
        assert_eq!(table.name(424_242), "Unknown");
        assert_eq!(table.priority(14), 60);
        assert_eq!(table.priority(1), 50);
    }

    #[test]
    fn client_libraries_map_to_their_server() {
        let table = Components::shipped();
        assert_eq!(table.server_name(33), "Mysql", "mysql-connector-java");
        assert_eq!(table.server_name(7003), "Mysql", "PyMysql");
        assert_eq!(table.server_name(30), "Redis", "Jedis");
        assert_eq!(table.server_name(7002), "Requests", "no mapping: its own name");
    }
}
