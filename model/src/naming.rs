//! Name length limits (analysis.md §12): longer names are cut, never rejected.

/// The configured name limits, counted as SkyWalking counts them (UTF-16 code units).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamingControl {
    /// `serviceNameMaxLength`: service names, peers used as service names, alias addresses.
    pub service_name_max_length: usize,
    /// `instanceNameMaxLength`.
    pub instance_name_max_length: usize,
    /// `endpointNameMaxLength`.
    pub endpoint_name_max_length: usize,
}

impl Default for NamingControl {
    fn default() -> Self {
        Self { service_name_max_length: 70, instance_name_max_length: 70, endpoint_name_max_length: 150 }
    }
}

impl NamingControl {
    /// A service name (or a peer address used as one), cut to the limit.
    pub fn service<'a>(&self, name: &'a str) -> &'a str {
        truncate_utf16(name, self.service_name_max_length)
    }

    /// An instance name, cut to the limit.
    pub fn instance<'a>(&self, name: &'a str) -> &'a str {
        truncate_utf16(name, self.instance_name_max_length)
    }

    /// An endpoint name, cut to the limit.
    pub fn endpoint<'a>(&self, name: &'a str) -> &'a str {
        truncate_utf16(name, self.endpoint_name_max_length)
    }
}

/// The longest prefix of `text` that is at most `max` UTF-16 code units, never splitting a
/// character (a character that would straddle the limit is left out).
pub fn truncate_utf16(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text; // every char is at least one byte and at most as many units as bytes
    }
    let mut units = 0;
    for (index, character) in text.char_indices() {
        units += character.len_utf16();
        if units > max {
            return &text[..index];
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_are_cut_to_the_limit() {
        let naming = NamingControl::default();
        let long = "s".repeat(100);
        assert_eq!(naming.service(&long).len(), 70);
        assert_eq!(naming.instance(&long).len(), 70);
        assert_eq!(naming.endpoint(&"e".repeat(200)).len(), 150);
        assert_eq!(naming.service("short"), "short");
    }

    #[test]
    fn limits_count_utf16_units_and_keep_characters_whole() {
        // 'é' is one unit, '😀' is two.
        assert_eq!(truncate_utf16("éééé", 3), "ééé");
        assert_eq!(truncate_utf16("a😀b", 2), "a");
        assert_eq!(truncate_utf16("a😀b", 3), "a😀");
    }
}
