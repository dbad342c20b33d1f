cni::plugin_main!(vxlan::Vxlan);
