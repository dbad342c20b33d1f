//! Routes: the `Route` value type and add / replace / list / delete.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
use rtnetlink::packet_core::{NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteMetric,
    RouteProtocol, RouteScope, RouteType, RouteVia,
};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::RouteNetlinkMessage;

use crate::error::{Error, Result};
use crate::handle::Netlink;
use crate::socket::Transport;

/// The main routing table (`RT_TABLE_MAIN`).
pub const MAIN_TABLE: u32 = 254;

/// 0.0.0.0/0.
pub const DEFAULT_V4: Ipv4Network = match Ipv4Network::new_checked(Ipv4Addr::UNSPECIFIED, 0) {
    Some(net) => net,
    None => panic!("0.0.0.0/0 is valid"),
};

/// ::/0.
pub const DEFAULT_V6: Ipv6Network = match Ipv6Network::new_checked(Ipv6Addr::UNSPECIFIED, 0) {
    Some(net) => net,
    None => panic!("::/0 is valid"),
};

/// IPv4 or IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpFamily {
    V4,
    V6,
}

impl IpFamily {
    pub fn of(ip: &IpAddr) -> IpFamily {
        match ip {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }

    fn address_family(self) -> AddressFamily {
        match self {
            IpFamily::V4 => AddressFamily::Inet,
            IpFamily::V6 => AddressFamily::Inet6,
        }
    }
}

/// A unicast route.
///
/// `dst` 0.0.0.0/0 or ::/0 is the default route; host bits in `dst` are
/// cleared when the route is sent. `table: None` means the main table (and
/// routes listed from the main table report `None`). `scope: None` lets us
/// pick what `ip route` picks: link scope for an IPv4 route without gateway,
/// universe otherwise; listed routes always report their scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: IpNetwork,
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
    /// The gateway is on the link even though no address says so.
    pub onlink: bool,
    /// `metric` / `priority`.
    pub metric: Option<u32>,
    pub table: Option<u32>,
    pub scope: Option<u8>,
    pub mtu: Option<u32>,
    pub advmss: Option<u32>,
}

impl Route {
    /// A route to `dst` with nothing else set.
    pub fn new(dst: IpNetwork) -> Route {
        Route {
            dst,
            gateway: None,
            oif: None,
            onlink: false,
            metric: None,
            table: None,
            scope: None,
            mtu: None,
            advmss: None,
        }
    }

    /// The default route of `gateway`'s family via `gateway`.
    pub fn default_via(gateway: IpAddr) -> Route {
        let dst = match gateway {
            IpAddr::V4(_) => IpNetwork::V4(DEFAULT_V4),
            IpAddr::V6(_) => IpNetwork::V6(DEFAULT_V6),
        };
        Route::new(dst).via(gateway)
    }

    pub fn via(mut self, gateway: IpAddr) -> Route {
        self.gateway = Some(gateway);
        self
    }

    pub fn dev(mut self, oif: u32) -> Route {
        self.oif = Some(oif);
        self
    }

    pub fn onlink(mut self) -> Route {
        self.onlink = true;
        self
    }

    pub fn metric(mut self, metric: u32) -> Route {
        self.metric = Some(metric);
        self
    }

    pub fn table(mut self, table: u32) -> Route {
        self.table = Some(table);
        self
    }

    pub fn mtu(mut self, mtu: u32) -> Route {
        self.mtu = Some(mtu);
        self
    }

    pub fn family(&self) -> IpFamily {
        IpFamily::of(&self.dst.ip())
    }

    pub fn is_default(&self) -> bool {
        self.dst.prefix() == 0
    }

    /// The netlink message for this route. For a delete, unset fields act as
    /// wildcards (scope `RT_SCOPE_NOWHERE`, protocol unspecified).
    fn to_message(&self, for_delete: bool) -> Result<RouteMessage> {
        let family = self.family();
        if let Some(gw) = &self.gateway {
            if IpFamily::of(gw) != family {
                return Err(Error::invalid(
                    format!("route {}", self.dst),
                    format!("gateway {gw} is not of the destination's family"),
                ));
            }
        }
        let mut msg = RouteMessage::default();
        let table = self.table.unwrap_or(MAIN_TABLE);
        let header = &mut msg.header;
        header.address_family = family.address_family();
        header.destination_prefix_length = self.dst.prefix();
        header.table = u8::try_from(table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
        header.kind = RouteType::Unicast;
        header.protocol = if for_delete {
            RouteProtocol::Unspec
        } else {
            RouteProtocol::Boot
        };
        header.scope = match self.scope {
            Some(scope) => RouteScope::from(scope),
            None if for_delete => RouteScope::NoWhere,
            None if self.gateway.is_none() && family == IpFamily::V4 => RouteScope::Link,
            None => RouteScope::Universe,
        };
        if self.onlink {
            header.flags |= RouteFlags::Onlink;
        }
        let attrs = &mut msg.attributes;
        attrs.push(RouteAttribute::Table(table));
        if self.dst.prefix() > 0 {
            attrs.push(RouteAttribute::Destination(RouteAddress::from(
                self.dst.network(),
            )));
        }
        if let Some(gw) = self.gateway {
            attrs.push(RouteAttribute::Gateway(RouteAddress::from(gw)));
        }
        if let Some(oif) = self.oif {
            attrs.push(RouteAttribute::Oif(oif));
        }
        if let Some(metric) = self.metric {
            attrs.push(RouteAttribute::Priority(metric));
        }
        let mut metrics = Vec::new();
        if let Some(mtu) = self.mtu {
            metrics.push(RouteMetric::Mtu(mtu));
        }
        if let Some(advmss) = self.advmss {
            metrics.push(RouteMetric::Advmss(advmss));
        }
        if !metrics.is_empty() {
            attrs.push(RouteAttribute::Metrics(metrics));
        }
        Ok(msg)
    }

    /// A unicast IPv4/IPv6 route from a dump entry; `None` for anything else
    /// (local, broadcast, blackhole, multicast, other families).
    fn from_message(msg: &RouteMessage) -> Option<Route> {
        let family = match msg.header.address_family {
            AddressFamily::Inet => IpFamily::V4,
            AddressFamily::Inet6 => IpFamily::V6,
            _ => return None,
        };
        if msg.header.kind != RouteType::Unicast {
            return None;
        }
        let mut dst_ip: IpAddr = match family {
            IpFamily::V4 => Ipv4Addr::UNSPECIFIED.into(),
            IpFamily::V6 => Ipv6Addr::UNSPECIFIED.into(),
        };
        let mut route = Route::new(IpNetwork::V4(DEFAULT_V4));
        let mut table = u32::from(msg.header.table);
        for attr in &msg.attributes {
            match attr {
                RouteAttribute::Destination(addr) => {
                    if let Some(ip) = route_ip(addr) {
                        dst_ip = ip;
                    }
                }
                RouteAttribute::Gateway(addr) => route.gateway = route_ip(addr),
                RouteAttribute::Via(RouteVia::Inet(ip)) => route.gateway = Some((*ip).into()),
                RouteAttribute::Via(RouteVia::Inet6(ip)) => route.gateway = Some((*ip).into()),
                RouteAttribute::Oif(oif) => route.oif = Some(*oif),
                RouteAttribute::Priority(p) => route.metric = Some(*p),
                RouteAttribute::Table(t) => table = *t,
                RouteAttribute::Metrics(metrics) => {
                    for m in metrics {
                        match m {
                            RouteMetric::Mtu(v) => route.mtu = Some(*v),
                            RouteMetric::Advmss(v) => route.advmss = Some(*v),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        route.dst = IpNetwork::new(dst_ip, msg.header.destination_prefix_length).ok()?;
        route.table = (table != MAIN_TABLE).then_some(table);
        route.scope = Some(u8::from(msg.header.scope));
        route.onlink = msg.header.flags.contains(RouteFlags::Onlink);
        Some(route)
    }
}

fn route_ip(addr: &RouteAddress) -> Option<IpAddr> {
    match addr {
        RouteAddress::Inet(ip) => Some((*ip).into()),
        RouteAddress::Inet6(ip) => Some((*ip).into()),
        _ => None,
    }
}

impl<T: Transport> Netlink<T> {
    /// `ip route add`: fails with [`Error::is_exists`] when the same route
    /// (destination, metric, table) is there.
    pub fn add_route(&self, route: &Route) -> Result<()> {
        let op = format!("add route {}", describe(route));
        let msg = route.to_message(false).map_err(|e| e.within(&op))?;
        self.request(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            op,
        )
        .map(drop)
    }

    /// `ip route replace`: adds the route or replaces the one with the same
    /// destination, metric and table.
    pub fn replace_route(&self, route: &Route) -> Result<()> {
        let op = format!("replace route {}", describe(route));
        let msg = route.to_message(false).map_err(|e| e.within(&op))?;
        self.request(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
            op,
        )
        .map(drop)
    }

    /// `ip route del`: fields left `None` match anything; a missing route
    /// gives [`Error::is_not_found`] (ESRCH).
    pub fn del_route(&self, route: &Route) -> Result<()> {
        let op = format!("delete route {}", describe(route));
        let msg = route.to_message(true).map_err(|e| e.within(&op))?;
        self.request(RouteNetlinkMessage::DelRoute(msg), 0, op)
            .map(drop)
    }

    /// The unicast routes of the main table for `family`.
    pub fn routes(&self, family: IpFamily) -> Result<Vec<Route>> {
        self.routes_in_table(family, MAIN_TABLE)
    }

    /// The unicast routes of table `table` for `family`.
    pub fn routes_in_table(&self, family: IpFamily, table: u32) -> Result<Vec<Route>> {
        let mut query = RouteMessage::default();
        query.header.address_family = family.address_family();
        let msgs = self.request(
            RouteNetlinkMessage::GetRoute(query),
            NLM_F_DUMP,
            format!("list {family:?} routes of table {table}"),
        )?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => Route::from_message(r),
                _ => None,
            })
            .filter(|r| r.table.unwrap_or(MAIN_TABLE) == table)
            .collect())
    }
}

/// `10.0.0.0/8 via 10.0.0.1 dev 3 metric 100` for messages.
fn describe(route: &Route) -> String {
    let mut s = route.dst.to_string();
    if let Some(gw) = route.gateway {
        s.push_str(&format!(" via {gw}"));
    }
    if let Some(oif) = route.oif {
        s.push_str(&format!(" dev {oif}"));
    }
    if let Some(metric) = route.metric {
        s.push_str(&format!(" metric {metric}"));
    }
    if let Some(table) = route.table {
        s.push_str(&format!(" table {table}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNetwork {
        s.parse().expect("net")
    }

    #[test]
    fn message_round_trips_through_from_message() {
        let route = Route::new(net("10.1.2.0/24"))
            .via("10.0.0.1".parse().expect("ip"))
            .dev(4)
            .onlink()
            .metric(100)
            .mtu(1400);
        let msg = route.to_message(false).expect("message");
        let back = Route::from_message(&msg).expect("unicast v4");
        assert_eq!(back.dst, route.dst);
        assert_eq!(back.gateway, route.gateway);
        assert_eq!(back.oif, Some(4));
        assert!(back.onlink);
        assert_eq!(back.metric, Some(100));
        assert_eq!(back.mtu, Some(1400));
        assert_eq!(back.table, None);
        assert_eq!(back.scope, Some(0)); // universe: it has a gateway
    }

    #[test]
    fn host_bits_are_cleared_and_scope_defaults_like_ip_route() {
        let msg = Route::new(net("10.1.2.3/16"))
            .dev(2)
            .to_message(false)
            .expect("msg");
        assert!(msg
            .attributes
            .contains(&RouteAttribute::Destination(RouteAddress::Inet(
                "10.1.0.0".parse().expect("ip")
            ))));
        assert_eq!(msg.header.scope, RouteScope::Link);
        let del = Route::new(net("10.1.0.0/16"))
            .to_message(true)
            .expect("msg");
        assert_eq!(del.header.scope, RouteScope::NoWhere);
        assert_eq!(del.header.protocol, RouteProtocol::Unspec);
    }

    #[test]
    fn default_route_has_no_destination_attribute() {
        let route = Route::default_via("fd00::1".parse().expect("ip"));
        assert!(route.is_default());
        assert_eq!(route.family(), IpFamily::V6);
        let msg = route.to_message(false).expect("msg");
        assert!(!msg
            .attributes
            .iter()
            .any(|a| matches!(a, RouteAttribute::Destination(_))));
        assert_eq!(Route::from_message(&msg).expect("route").dst, net("::/0"));
    }

    #[test]
    fn mixed_families_and_big_tables() {
        let bad = Route::new(net("10.0.0.0/8")).via("fd00::1".parse().expect("ip"));
        assert_eq!(
            bad.to_message(false).unwrap_err().kind(),
            crate::ErrorKind::InvalidInput
        );
        let msg = Route::new(net("10.0.0.0/8"))
            .table(1000)
            .to_message(false)
            .expect("msg");
        assert_eq!(msg.header.table, RouteHeader::RT_TABLE_UNSPEC);
        assert_eq!(Route::from_message(&msg).expect("route").table, Some(1000));
    }
}
