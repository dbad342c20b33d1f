//! The name rules libcni applies (pkg/utils): container id, network name, ifname.

/// `^[A-Za-z0-9][A-Za-z0-9_.-]*$`, the rule for container ids and network names.
fn is_cni_name(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

pub fn container_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("missing container id".into());
    }
    if !is_cni_name(id) {
        return Err(format!(
            "invalid container id {id:?}: must match ^[A-Za-z0-9][A-Za-z0-9_.-]*$"
        ));
    }
    Ok(())
}

pub fn network_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("missing network name".into());
    }
    if !is_cni_name(name) {
        return Err(format!(
            "invalid network name {name:?}: must match ^[A-Za-z0-9][A-Za-z0-9_.-]*$"
        ));
    }
    Ok(())
}

/// Linux interface name rules: 1..=15 bytes, not `.`/`..`, no `/`, `:` or whitespace.
pub fn ifname(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("interface name is empty".into());
    }
    if name.len() > 15 {
        return Err(format!(
            "interface name {name:?} is too long (at most 15 bytes)"
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("interface name {name:?} is not allowed"));
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err(format!(
            "interface name {name:?} contains '/', ':' or whitespace"
        ));
    }
    Ok(())
}

/// A plugin `type` names a file in a CNI_PATH directory: no path separators.
pub fn plugin_type(t: &str) -> Result<(), String> {
    if t.is_empty() {
        return Err("plugin has an empty 'type'".into());
    }
    if t.contains('/') || t.contains('\0') || t == "." || t == ".." {
        return Err(format!("invalid plugin type {t:?}: must be a file name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(container_id("cnitool-0123abcd").is_ok());
        assert!(container_id("a_b.c-d").is_ok());
        assert!(container_id("").is_err());
        assert!(container_id("-a").is_err());
        assert!(container_id("a b").is_err());
        assert!(network_name("my.net_1").is_ok());
        assert!(network_name("../etc").is_err());
        assert!(network_name("a/b").is_err());
    }

    #[test]
    fn ifnames() {
        assert!(ifname("eth0").is_ok());
        assert!(ifname("123456789012345").is_ok());
        assert!(ifname("1234567890123456").is_err());
        assert!(ifname("").is_err());
        assert!(ifname(".").is_err());
        assert!(ifname("..").is_err());
        assert!(ifname("a/b").is_err());
        assert!(ifname("a:b").is_err());
        assert!(ifname("a b").is_err());
    }

    #[test]
    fn plugin_types() {
        assert!(plugin_type("bridge").is_ok());
        assert!(plugin_type("").is_err());
        assert!(plugin_type("../bin/sh").is_err());
        assert!(plugin_type("..").is_err());
    }
}
