cni::plugin_main!(etcd_ipam::EtcdIpam);
