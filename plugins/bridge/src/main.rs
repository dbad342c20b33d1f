cni::plugin_main!(bridge::Bridge);
