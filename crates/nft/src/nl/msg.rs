//! nfnetlink message encoding and decoding: netlink headers, the nfgenmsg
//! header, attributes (TLVs, 4-byte aligned, nested ones flagged) and the
//! constants of `linux/netfilter/nf_tables.h` we use. Splitting datagrams
//! into messages is the socket's (`netlink::socket::messages`).
//!
//! nf_tables integers inside attributes are big-endian; the netlink and
//! attribute headers are in host order.

pub(crate) use netlink::socket::{NLM_F_ACK, NLM_F_REQUEST};

pub(crate) const NFNL_SUBSYS_NFTABLES: u16 = 10;
pub(crate) const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
pub(crate) const NFNL_MSG_BATCH_END: u16 = 0x11;

pub(crate) const NLM_F_EXCL: u16 = 0x200;
pub(crate) const NLM_F_CREATE: u16 = 0x400;
pub(crate) const NLM_F_APPEND: u16 = 0x800;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;

/// `NFT_MSG_*`.
pub(crate) mod op {
    pub const NEWCHAIN: u16 = 3;
    pub const GETCHAIN: u16 = 4;
    pub const DELCHAIN: u16 = 5;
    pub const NEWRULE: u16 = 6;
    pub const GETRULE: u16 = 7;
    pub const NEWSETELEM: u16 = 12;
    pub const GETSETELEM: u16 = 13;
    pub const DELSETELEM: u16 = 14;
}

/// `NFTA_*` attribute numbers, grouped by the object they belong to.
pub(crate) mod attr {
    pub const CHAIN_TABLE: u16 = 1;
    pub const CHAIN_NAME: u16 = 3;

    pub const RULE_TABLE: u16 = 1;
    pub const RULE_CHAIN: u16 = 2;
    pub const RULE_EXPRESSIONS: u16 = 4;
    pub const RULE_USERDATA: u16 = 7;

    pub const LIST_ELEM: u16 = 1;
    pub const EXPR_NAME: u16 = 1;
    pub const EXPR_DATA: u16 = 2;

    pub const DATA_VALUE: u16 = 1;
    pub const DATA_VERDICT: u16 = 2;
    pub const VERDICT_CODE: u16 = 1;
    pub const VERDICT_CHAIN: u16 = 2;

    pub const IMMEDIATE_DREG: u16 = 1;
    pub const IMMEDIATE_DATA: u16 = 2;

    pub const CMP_SREG: u16 = 1;
    pub const CMP_OP: u16 = 2;
    pub const CMP_DATA: u16 = 3;

    pub const PAYLOAD_DREG: u16 = 1;
    pub const PAYLOAD_BASE: u16 = 2;
    pub const PAYLOAD_OFFSET: u16 = 3;
    pub const PAYLOAD_LEN: u16 = 4;

    pub const META_DREG: u16 = 1;
    pub const META_KEY: u16 = 2;

    pub const BITWISE_SREG: u16 = 1;
    pub const BITWISE_DREG: u16 = 2;
    pub const BITWISE_LEN: u16 = 3;
    pub const BITWISE_MASK: u16 = 4;
    pub const BITWISE_XOR: u16 = 5;

    pub const NAT_TYPE: u16 = 1;
    pub const NAT_FAMILY: u16 = 2;
    pub const NAT_REG_ADDR_MIN: u16 = 3;
    pub const NAT_REG_PROTO_MIN: u16 = 5;
    pub const NAT_FLAGS: u16 = 7;

    pub const SET_ELEM_LIST_TABLE: u16 = 1;
    pub const SET_ELEM_LIST_SET: u16 = 2;
    pub const SET_ELEM_LIST_ELEMENTS: u16 = 3;
    pub const SET_ELEM_KEY: u16 = 1;
    pub const SET_ELEM_DATA: u16 = 2;
    pub const SET_ELEM_USERDATA: u16 = 6;
}

/// `NF_DROP`, `NFT_JUMP`, `NFT_RETURN` as the kernel reads them (be32 of an i32).
pub(crate) const VERDICT_DROP: i32 = 0;
pub(crate) const VERDICT_JUMP: i32 = -3;
pub(crate) const VERDICT_RETURN: i32 = -5;

/// The comment's type in rule and set-element userdata (libnftnl's
/// `NFTNL_UDATA_RULE_COMMENT` / `NFTNL_UDATA_SET_ELEM_COMMENT`), so `nft list`
/// shows our comments like its own.
const UDATA_COMMENT: u8 = 0;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// A buffer of netlink messages being written.
#[derive(Debug, Default)]
pub(crate) struct MsgBuf {
    pub buf: Vec<u8>,
}

impl MsgBuf {
    /// Starts a message: netlink header (length patched by [`MsgBuf::end`])
    /// and nfgenmsg. Returns where it starts.
    pub fn begin(&mut self, ty: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.push(family);
        self.buf.push(0); // NFNETLINK_V0
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        start
    }

    /// An nf_tables message (`NFNL_SUBSYS_NFTABLES << 8 | msg`).
    pub fn begin_nft(&mut self, msg: u16, flags: u16, seq: u32, family: u8) -> usize {
        self.begin((NFNL_SUBSYS_NFTABLES << 8) | msg, flags, seq, family, 0)
    }

    pub fn end(&mut self, start: usize) {
        let len = (self.buf.len() - start) as u32;
        self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    pub fn attr(&mut self, ty: u16, data: &[u8]) {
        let len = (4 + data.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.buf.resize(align4(self.buf.len()), 0);
    }

    pub fn attr_u32(&mut self, ty: u16, v: u32) {
        self.attr(ty, &v.to_be_bytes());
    }

    pub fn attr_i32(&mut self, ty: u16, v: i32) {
        self.attr(ty, &v.to_be_bytes());
    }

    /// A NUL-terminated string attribute.
    pub fn attr_str(&mut self, ty: u16, s: &str) {
        let mut v = Vec::with_capacity(s.len() + 1);
        v.extend_from_slice(s.as_bytes());
        v.push(0);
        self.attr(ty, &v);
    }

    pub fn nest(&mut self, ty: u16) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        start
    }

    pub fn nest_end(&mut self, start: usize) {
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    /// `NFTA_DATA_VERDICT { code, [chain] }` inside the current nest.
    pub fn verdict(&mut self, code: i32, chain: Option<&str>) {
        let v = self.nest(attr::DATA_VERDICT);
        self.attr_i32(attr::VERDICT_CODE, code);
        if let Some(c) = chain {
            self.attr_str(attr::VERDICT_CHAIN, c);
        }
        self.nest_end(v);
    }
}

/// Userdata holding one comment, as libnftnl writes it: type, length
/// (with the NUL), the bytes, NUL.
pub(crate) fn comment_udata(comment: &str) -> Option<Vec<u8>> {
    let len = u8::try_from(comment.len() + 1).ok()?;
    let mut v = vec![UDATA_COMMENT, len];
    v.extend_from_slice(comment.as_bytes());
    v.push(0);
    Some(v)
}

/// The comment in a userdata blob, if it has one.
pub(crate) fn udata_comment(mut data: &[u8]) -> Option<String> {
    while data.len() >= 2 {
        let (ty, len) = (data[0], usize::from(data[1]));
        let value = data.get(2..2 + len)?;
        if ty == UDATA_COMMENT {
            let text = value.strip_suffix(&[0]).unwrap_or(value);
            return String::from_utf8(text.to_vec()).ok();
        }
        data = &data[2 + len..];
    }
    None
}

/// One attribute read from a message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attr<'a> {
    pub ty: u16,
    pub data: &'a [u8],
}

impl<'a> Attr<'a> {
    /// The attributes nested in this one.
    pub fn nested(&self) -> Attrs<'a> {
        Attrs { data: self.data }
    }

    /// A NUL-terminated string.
    pub fn str(&self) -> Option<&'a str> {
        let raw = self.data.strip_suffix(&[0]).unwrap_or(self.data);
        std::str::from_utf8(raw).ok()
    }

    pub fn i32(&self) -> Option<i32> {
        Some(i32::from_be_bytes(self.data.get(..4)?.try_into().ok()?))
    }
}

/// An iterator over a run of attributes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attrs<'a> {
    pub data: &'a [u8],
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Attr<'a>;

    fn next(&mut self) -> Option<Attr<'a>> {
        if self.data.len() < 4 {
            return None;
        }
        let len = usize::from(u16::from_ne_bytes([self.data[0], self.data[1]]));
        let ty = u16::from_ne_bytes([self.data[2], self.data[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > self.data.len() {
            self.data = &[];
            return None;
        }
        let attr = Attr {
            ty,
            data: &self.data[4..len],
        };
        self.data = self.data.get(align4(len)..).unwrap_or(&[]);
        Some(attr)
    }
}

impl<'a> Attrs<'a> {
    pub fn get(self, ty: u16) -> Option<Attr<'a>> {
        self.into_iter().find(|a: &Attr<'a>| a.ty == ty)
    }
}

/// The attributes of an nf_tables message (whole, as the socket returns
/// it): what follows the netlink header and the 4-byte nfgenmsg.
pub(crate) fn nft_attrs(msg: &[u8]) -> Attrs<'_> {
    Attrs {
        data: msg.get(netlink::socket::HEADER_LEN + 4..).unwrap_or(&[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink::socket::Message;

    /// The socket's split of a datagram, collected.
    fn messages(buf: &[u8]) -> Vec<Message<'_>> {
        netlink::socket::messages(buf).collect()
    }

    #[test]
    fn comments_round_trip_through_userdata() {
        let u = comment_udata("n/c/eth0").unwrap();
        assert_eq!(u, b"\x00\x09n/c/eth0\x00");
        assert_eq!(udata_comment(&u).as_deref(), Some("n/c/eth0"));
        assert_eq!(
            udata_comment(b"\x05\x01x\x00\x02y\x00").as_deref(),
            Some("y")
        );
        assert_eq!(udata_comment(b"\x00\x09short"), None);
        assert!(comment_udata(&"x".repeat(300)).is_none());
    }

    #[test]
    fn messages_and_attributes_round_trip() {
        let mut b = MsgBuf::default();
        let m = b.begin_nft(op::NEWCHAIN, NLM_F_REQUEST, 7, 1);
        b.attr_str(attr::CHAIN_TABLE, "t");
        let n = b.nest(attr::RULE_EXPRESSIONS);
        b.attr_u32(attr::CMP_OP, 1);
        b.nest_end(n);
        b.end(m);
        let msgs = messages(&b.buf);
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].ty, (10 << 8) | 3);
        assert_eq!(msgs[0].seq, 7);
        let attrs: Vec<_> = nft_attrs(msgs[0].bytes).collect();
        assert_eq!(attrs[0].str(), Some("t"));
        assert_eq!(attrs[1].ty, attr::RULE_EXPRESSIONS);
        let inner: Vec<_> = attrs[1].nested().collect();
        assert_eq!(inner[0].i32(), Some(1));
    }

    #[test]
    fn truncated_input_never_panics() {
        let mut b = MsgBuf::default();
        let m = b.begin_nft(op::NEWRULE, 0, 1, 1);
        b.attr_str(attr::RULE_TABLE, "table");
        b.end(m);
        for cut in 0..b.buf.len() {
            for msg in messages(&b.buf[..cut]) {
                let _ = nft_attrs(msg.bytes).count();
            }
            let _ = Attrs {
                data: &b.buf[16..cut.max(16)],
            }
            .count();
        }
        // Not only no panic: a message cut anywhere short of its length is
        // not read at all, and the whole one is read with its attribute.
        for cut in 0..b.buf.len() {
            assert!(messages(&b.buf[..cut]).is_empty(), "cut at {cut}");
        }
        let whole = messages(&b.buf);
        assert_eq!(whole.len(), 1);
        let attrs: Vec<_> = nft_attrs(whole[0].bytes).collect();
        assert_eq!(attrs.len(), 1);
        assert_eq!(attrs[0].str(), Some("table"));
        // The attribute area cut short of the attribute's length (4 + 6):
        // nothing; from that length on (only padding missing) the attribute.
        let area = &b.buf[20..];
        for cut in 0..=area.len() {
            let n = Attrs { data: &area[..cut] }.count();
            assert_eq!(n, usize::from(cut >= 10), "attribute area cut at {cut}");
        }
    }

    /// Two messages, each with a table and a chain attribute.
    fn two_messages() -> Vec<u8> {
        let mut b = MsgBuf::default();
        for seq in [1, 2] {
            let m = b.begin_nft(op::NEWCHAIN, 0, seq, 1);
            b.attr_str(attr::CHAIN_TABLE, "t");
            b.attr_str(attr::CHAIN_NAME, "c");
            b.end(m);
        }
        b.buf
    }

    fn set_u16(buf: &mut [u8], at: usize, v: u16) {
        buf[at..at + 2].copy_from_slice(&v.to_ne_bytes());
    }

    #[test]
    fn corrupted_attribute_lengths_end_the_attributes() {
        let good = two_messages();
        let first = &good[..36];
        // Attribute area of the first message: table at 20, chain at 28.
        let names = |buf: &[u8]| {
            let m = messages(buf);
            m.first()
                .map(|m| nft_attrs(m.bytes).map(|a| a.ty).collect::<Vec<_>>())
                .unwrap_or_default()
        };
        assert_eq!(names(first), [attr::CHAIN_TABLE, attr::CHAIN_NAME]);
        // nla_len below the 4-byte header, or past the end of the area:
        // that attribute and everything after it are refused.
        for (at, bad, want) in [
            (20, 0, vec![]),
            (20, 3, vec![]),
            (20, 17, vec![]),
            (20, u16::MAX, vec![]),
            (28, 0, vec![attr::CHAIN_TABLE]),
            (28, 3, vec![attr::CHAIN_TABLE]),
            (28, 5, vec![attr::CHAIN_TABLE, attr::CHAIN_NAME]),
            (28, 9, vec![attr::CHAIN_TABLE]),
        ] {
            let mut buf = first.to_vec();
            set_u16(&mut buf, at, bad);
            assert_eq!(names(&buf), want, "nla_len {bad} at {at}");
        }
        // A table attribute claiming 5 bytes keeps 1 byte of data ("t"
        // without its NUL), not a byte more.
        let mut buf = first.to_vec();
        set_u16(&mut buf, 20, 5);
        let msgs = messages(&buf);
        let table = nft_attrs(msgs[0].bytes).next().unwrap();
        assert_eq!(table.data, b"t");
        // A nested attribute longer than its parent is refused inside it,
        // and the parent's siblings are still read.
        let mut b = MsgBuf::default();
        let m = b.begin_nft(op::NEWRULE, 0, 1, 1);
        let n = b.nest(attr::RULE_EXPRESSIONS);
        b.attr_u32(attr::CMP_OP, 1);
        b.nest_end(n);
        b.attr_str(attr::RULE_TABLE, "t");
        b.end(m);
        let inner_len_at = 20 + 4;
        set_u16(&mut b.buf, inner_len_at, 64);
        let msgs = messages(&b.buf);
        let attrs: Vec<_> = nft_attrs(msgs[0].bytes).collect();
        assert_eq!(attrs.len(), 2);
        assert_eq!(attrs[0].nested().count(), 0);
        assert_eq!(attrs[1].str(), Some("t"));
        // A string attribute with invalid UTF-8 is no string.
        let bad = Attr {
            ty: 1,
            data: b"\xff\xfe\0",
        };
        assert_eq!(bad.str(), None);
        // An i32 attribute of fewer than 4 bytes is no integer.
        let short = Attr {
            ty: 1,
            data: &[0, 0, 1],
        };
        assert_eq!(short.i32(), None);
    }
}
