cni::plugin_main!(host_local::HostLocal);
