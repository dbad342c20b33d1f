cni::plugin_main!(loopback::Loopback);
