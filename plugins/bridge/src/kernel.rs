//! Small helpers around the netlink and nft crates: error mapping, random
//! names, host sysctls.

use cni::Error;

/// A kernel failure as a CNI error (code 100), keeping its context.
pub fn nl(e: netlink::Error) -> Error {
    Error::plugin(format!("bridge: {e}"))
}

/// A namespace that can't be opened: code 8, with netlink's reason.
pub fn netns_error(path: &std::path::Path, e: netlink::Error) -> Error {
    Error::invalid_netns(format!("cannot open network namespace {}", path.display()))
        .with_details(e.to_string())
}

/// The request's container namespace (ADD and CHECK need it to exist).
pub fn container_netns(req: &cni::Request) -> Result<netlink::Netns, Error> {
    let path = req.netns()?;
    netlink::Netns::open(path).map_err(|e| netns_error(path, e))
}

/// An nftables failure as a CNI error (code 100).
pub fn nft(e: nft::Error) -> Error {
    Error::plugin(format!("bridge: nftables: {e}"))
}

/// Random bytes from the kernel (for veth names and the bridge MAC).
pub fn random<const N: usize>() -> Result<[u8; N], Error> {
    let mut buf = [0u8; N];
    let mut f = std::fs::File::open("/dev/urandom")
        .map_err(|e| Error::io(format!("open /dev/urandom: {e}")))?;
    std::io::Read::read_exact(&mut f, &mut buf)
        .map_err(|e| Error::io(format!("read /dev/urandom: {e}")))?;
    Ok(buf)
}

/// A locally administered unicast MAC.
pub fn random_mac() -> Result<[u8; 6], Error> {
    let mut mac = random::<6>()?;
    mac[0] = (mac[0] & 0xfe) | 0x02;
    Ok(mac)
}

/// Sets a sysctl of the plugin's own (host) namespace when it differs.
/// `key` is slash-separated (`net/ipv4/ip_forward`): interface names may hold dots.
pub fn host_sysctl(key: &str, value: &str) -> Result<(), Error> {
    netlink::Sysctl::ensure_here(key, value)
        .map(|_| ())
        .map_err(|e| Error::io(format!("bridge: {e}")))
}
