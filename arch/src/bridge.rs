//! The byte protocol of the host bridge: how a host reaches an engine on a board without PCIe (the ULX3S's
//! FTDI UART), the contract between `hdl::board::HostBridge` and a host driver.
//!
//! # Commands
//! The host sends a command byte followed by its little-endian arguments; the bridge performs the command and
//! answers. Every command is answered, so the host sends one command, reads its whole reply, then sends the
//! next (bytes sent while the bridge replies are dropped).
//!
//! | Command | Byte | Arguments | Reply |
//! |---|---|---|---|
//! | BAR write | [`CMD_BAR_WRITE`] `'W'` | offset u16, value u32 | [`ACK`] |
//! | BAR read | [`CMD_BAR_READ`] `'R'` | offset u16 | value u32 |
//! | memory write | [`CMD_MEM_WRITE`] `'M'` | address u32, length u16, then `length` data bytes | [`ACK`] |
//! | memory read | [`CMD_MEM_READ`] `'N'` | address u32, length u16 | `length` bytes |
//!
//! * BAR offsets are byte offsets into BAR0 (`crate::regs`); the bridge uses their low 12 bits (BAR0 is
//!   4 KiB).
//! * Memory addresses are byte offsets into the board memory, which the engine sees at IOVA 0 (so a host sets
//!   `DMA_BASE = 0` and `DMA_SIZE` at most the memory's size). Bytes outside the memory read as zero and
//!   writes to them are dropped. A memory read of length 0 has an empty reply.
//!
//! # Errors and resynchronisation
//! * A byte that is not a command where a command is expected is answered with [`ERR`] and otherwise ignored.
//! * A command whose arguments or data stop arriving is abandoned after the bridge's timeout (a quiet line for
//!   [`TIMEOUT_BYTE_TIMES`] byte times on a UART board) and answered with [`ERR`].
//!
//! So a host that lost track (a dropped or corrupted byte) resynchronises by staying quiet for longer than the
//! timeout, discarding whatever it receives, and continuing with the next command: the bridge is then waiting
//! for a command byte.

/// BAR write: offset u16 LE, value u32 LE; reply [`ACK`].
pub const CMD_BAR_WRITE: u8 = b'W';
/// BAR read: offset u16 LE; reply the value, u32 LE.
pub const CMD_BAR_READ: u8 = b'R';
/// Memory write: address u32 LE, length u16 LE, `length` bytes; reply [`ACK`] once all are written.
pub const CMD_MEM_WRITE: u8 = b'M';
/// Memory read: address u32 LE, length u16 LE; reply the `length` bytes.
pub const CMD_MEM_READ: u8 = b'N';
/// The acknowledgement of a write (ASCII ACK).
pub const ACK: u8 = 0x06;
/// The answer to an unknown command byte or an abandoned command (ASCII NAK).
pub const ERR: u8 = 0x15;
/// How long a command may stall (no byte arriving) before the bridge abandons it, in byte times of the UART
/// (10 bit times each): the board's default.
pub const TIMEOUT_BYTE_TIMES: u32 = 64;
/// The most data bytes one memory command moves.
pub const MAX_TRANSFER: usize = u16::MAX as usize;

/// Argument bytes following a command byte, or `None` for a byte that is not a command.
pub fn argument_bytes(command: u8) -> Option<usize> {
    match command {
        CMD_BAR_WRITE => Some(6),
        CMD_BAR_READ => Some(2),
        CMD_MEM_WRITE | CMD_MEM_READ => Some(6),
        _ => None,
    }
}

/// The bytes of a BAR write of `value` to `offset`. Reply: [`ACK`].
pub fn encode_bar_write(offset: u16, value: u32) -> Vec<u8> {
    let mut v = vec![CMD_BAR_WRITE];
    v.extend_from_slice(&offset.to_le_bytes());
    v.extend_from_slice(&value.to_le_bytes());
    v
}

/// The bytes of a BAR read of `offset`. Reply: 4 bytes, [`decode_bar_read`].
pub fn encode_bar_read(offset: u16) -> Vec<u8> {
    let mut v = vec![CMD_BAR_READ];
    v.extend_from_slice(&offset.to_le_bytes());
    v
}

/// The bytes of a memory write of `data` at `addr`. Reply: [`ACK`].
///
/// # Panics
/// If `data` is longer than [`MAX_TRANSFER`] (split it with [`encode_mem_writes`]).
pub fn encode_mem_write(addr: u32, data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(data.len()).expect("at most 65535 bytes per memory write");
    let mut v = vec![CMD_MEM_WRITE];
    v.extend_from_slice(&addr.to_le_bytes());
    v.extend_from_slice(&len.to_le_bytes());
    v.extend_from_slice(data);
    v
}

/// `data` at `addr` as memory writes of at most `chunk` bytes each (`1..=MAX_TRANSFER`), in order: one
/// command per element, each answered by [`ACK`].
pub fn encode_mem_writes(addr: u32, data: &[u8], chunk: usize) -> Vec<Vec<u8>> {
    assert!((1..=MAX_TRANSFER).contains(&chunk), "chunk of {chunk} bytes");
    data.chunks(chunk).enumerate().map(|(i, c)| encode_mem_write(addr + (i * chunk) as u32, c)).collect()
}

/// The bytes of a memory read of `len` bytes at `addr`. Reply: the `len` bytes.
pub fn encode_mem_read(addr: u32, len: u16) -> Vec<u8> {
    let mut v = vec![CMD_MEM_READ];
    v.extend_from_slice(&addr.to_le_bytes());
    v.extend_from_slice(&len.to_le_bytes());
    v
}

/// Why a reply is not what the command expects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BridgeError {
    /// The bridge answered [`ERR`]: it did not understand the command or abandoned it.
    #[error("the bridge rejected the command (NAK)")]
    Rejected,
    /// The reply has the wrong length or value.
    #[error("unexpected reply {0:02x?}")]
    BadReply(Vec<u8>),
}

/// Checks the reply to a write command (BAR or memory): exactly [`ACK`].
pub fn decode_ack(reply: &[u8]) -> Result<(), BridgeError> {
    match reply {
        [ACK] => Ok(()),
        [ERR] => Err(BridgeError::Rejected),
        r => Err(BridgeError::BadReply(r.to_vec())),
    }
}

/// The value in the reply to a BAR read (4 bytes, little-endian).
pub fn decode_bar_read(reply: &[u8]) -> Result<u32, BridgeError> {
    match reply {
        [ERR] => Err(BridgeError::Rejected),
        r => <[u8; 4]>::try_from(r).map(u32::from_le_bytes).map_err(|_| BridgeError::BadReply(r.to_vec())),
    }
}

/// The length of the reply to a complete command (`bytes` as the encoders produce them), so a host knows how
/// many bytes to read: 1 for writes, 4 for a BAR read, `length` for a memory read; `None` for bytes that do
/// not start with a command.
pub fn reply_len(command: &[u8]) -> Option<usize> {
    match *command.first()? {
        CMD_BAR_WRITE | CMD_MEM_WRITE => Some(1),
        CMD_BAR_READ => Some(4),
        CMD_MEM_READ => Some(u16::from_le_bytes([*command.get(5)?, *command.get(6)?]) as usize),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_encode_little_endian_with_their_lengths() {
        assert_eq!(encode_bar_write(0x5c, 0x0102_0304), [b'W', 0x5c, 0, 4, 3, 2, 1]);
        assert_eq!(encode_bar_read(0x124), [b'R', 0x24, 0x01]);
        assert_eq!(encode_mem_write(0x1234, &[9, 8]), [b'M', 0x34, 0x12, 0, 0, 2, 0, 9, 8]);
        assert_eq!(encode_mem_read(0x10, 300), [b'N', 0x10, 0, 0, 0, 0x2c, 0x01]);
        for cmd in [encode_bar_write(1, 2), encode_bar_read(3), encode_mem_read(4, 5), encode_mem_write(6, &[])] {
            assert_eq!(argument_bytes(cmd[0]), Some(cmd.len() - 1), "{cmd:?}");
        }
        assert_eq!(argument_bytes(b'x'), None);
        assert_eq!(reply_len(&encode_mem_read(0, 300)), Some(300));
        assert_eq!(reply_len(&encode_bar_read(0)), Some(4));
        assert_eq!(reply_len(&encode_mem_write(0, &[1])), Some(1));
        assert_eq!(reply_len(&[0xff]), None);
    }

    #[test]
    fn long_writes_split_into_chunks_at_consecutive_addresses() {
        let data: Vec<u8> = (0..10).collect();
        let cmds = encode_mem_writes(100, &data, 4);
        assert_eq!(cmds.len(), 3);
        assert_eq!(cmds[1], encode_mem_write(104, &[4, 5, 6, 7]));
        assert_eq!(cmds[2], encode_mem_write(108, &[8, 9]));
    }

    #[test]
    fn replies_decode_or_report_errors() {
        assert_eq!(decode_ack(&[ACK]), Ok(()));
        assert_eq!(decode_ack(&[ERR]), Err(BridgeError::Rejected));
        assert!(matches!(decode_ack(&[ACK, ACK]), Err(BridgeError::BadReply(_))));
        assert_eq!(decode_bar_read(&[1, 0, 0, 0x80]), Ok(0x8000_0001));
        assert_eq!(decode_bar_read(&[ERR]), Err(BridgeError::Rejected));
        assert!(matches!(decode_bar_read(&[1, 2]), Err(BridgeError::BadReply(_))));
    }
}
