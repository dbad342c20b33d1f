//! The name rules libcni applies (pkg/utils): container id, network name, ifname.

// The rules themselves live in the protocol crate's value types, shared with
// every plugin; these wrappers keep cnitool's string errors.

pub fn container_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("missing container id".into());
    }
    id.parse::<cni::ContainerId>()
        .map(|_| ())
        .map_err(|e| e.msg)
}

pub fn network_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("missing network name".into());
    }
    name.parse::<cni::NetworkName>()
        .map(|_| ())
        .map_err(|e| e.msg)
}

/// Linux interface name rules: 1..=15 bytes, not `.`/`..`, no `/`, `:` or whitespace.
pub fn ifname(name: &str) -> Result<(), String> {
    name.parse::<cni::IfName>().map(|_| ()).map_err(|e| e.msg)
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
