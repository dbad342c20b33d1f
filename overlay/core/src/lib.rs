//! What overlayd, the vxlan plugin and overlayctl share: the overlay's
//! network config ([`OverlayConfig`]), the record each node publishes
//! ([`NodeRecord`]), where both live in etcd ([`Keys`]), how a node picks its
//! subnet ([`pick_subnet`]) and the file overlayd hands the plugin
//! ([`SubnetFile`]). Pure: no etcd, no kernel.

mod config;
mod keys;
mod record;
mod subnet;
mod subnet_file;

pub use config::{OverlayConfig, DEFAULT_PORT, DEFAULT_SUBNET_LEN};
pub use keys::{subnet_id, Keys, DEFAULT_PREFIX};
pub use record::{parse_mac, NodeRecord};
pub use subnet::{pick_subnet, vtep_address};
pub use subnet_file::SubnetFile;
