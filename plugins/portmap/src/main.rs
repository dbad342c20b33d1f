cni::plugin_main!(portmap::Portmap);
