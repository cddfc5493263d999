//! Receives datagrams in batches: one `recvmmsg` system call returns every
//! datagram already queued (Linux), with a plain `recv_from` loop elsewhere.
//! All buffers are allocated once.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// Reusable buffers for up to `slots` datagrams of up to `slot_len` bytes.
pub struct BatchReceiver {
    slot_len: usize,
    buffers: Vec<u8>,
    lens: Vec<usize>,
    addrs: Vec<SocketAddr>,
    count: usize,
    #[cfg(target_os = "linux")]
    sys: linux::Headers,
}

impl BatchReceiver {
    /// Buffers for `slots` datagrams of `slot_len` bytes each; a longer
    /// datagram is truncated to `slot_len` (so make it one more than the
    /// longest valid datagram to detect oversized ones by length).
    pub fn new(slots: usize, slot_len: usize) -> Self {
        let slots = slots.max(1);
        Self {
            slot_len,
            buffers: vec![0; slots * slot_len],
            lens: vec![0; slots],
            addrs: vec![SocketAddr::from(([0, 0, 0, 0], 0)); slots],
            count: 0,
            #[cfg(target_os = "linux")]
            sys: linux::Headers::new(slots),
        }
    }

    /// Waits up to `wait` for at least one datagram (`None`: do not wait),
    /// then takes every queued datagram that fits. Returns how many; 0 when
    /// the wait ended without data.
    pub fn recv(&mut self, socket: &UdpSocket, wait: Option<Duration>) -> io::Result<usize> {
        self.count = 0;
        #[cfg(target_os = "linux")]
        let result = linux::recv(self, socket, wait);
        #[cfg(not(target_os = "linux"))]
        let result = portable_recv(self, socket, wait);
        match result {
            Ok(n) => {
                self.count = n;
                Ok(n)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(0)
            }
            Err(e) => Err(e),
        }
    }

    /// The `i`-th datagram of the last batch: sender and bytes.
    pub fn get(&self, i: usize) -> (SocketAddr, &[u8]) {
        assert!(i < self.count, "datagram {i} of a batch of {}", self.count);
        let start = i * self.slot_len;
        (self.addrs[i], &self.buffers[start..start + self.lens[i]])
    }
}

#[cfg(not(target_os = "linux"))]
fn portable_recv(
    rx: &mut BatchReceiver,
    socket: &UdpSocket,
    wait: Option<Duration>,
) -> io::Result<usize> {
    let mut n = 0;
    let slots = rx.lens.len();
    while n < slots {
        let blocking = n == 0 && wait.is_some();
        socket.set_nonblocking(!blocking)?;
        if blocking {
            socket.set_read_timeout(wait)?;
        }
        let start = n * rx.slot_len;
        match socket.recv_from(&mut rx.buffers[start..start + rx.slot_len]) {
            Ok((len, from)) => {
                rx.lens[n] = len;
                rx.addrs[n] = from;
                n += 1;
            }
            Err(e) if n > 0 && e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(target_os = "linux")]
mod linux {
    //! `recvmmsg(2)`: take what is queued (`MSG_DONTWAIT`); if nothing is,
    //! block (up to SO_RCVTIMEO) for the first datagram and take the rest
    //! without blocking (`MSG_WAITFORONE`).

    use super::BatchReceiver;
    use std::io;
    use std::mem;
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    /// The kernel-facing headers, rebuilt to point into the buffers on
    /// every call (cheap; no allocation).
    pub struct Headers {
        msgs: Vec<libc::mmsghdr>,
        iovecs: Vec<libc::iovec>,
        names: Vec<libc::sockaddr_storage>,
    }

    impl Headers {
        pub fn new(slots: usize) -> Self {
            // SAFETY: these C structs are plain data for which all-zero is valid.
            let zeroed_msg: libc::mmsghdr = unsafe { mem::zeroed() };
            let zeroed_name: libc::sockaddr_storage = unsafe { mem::zeroed() };
            Self {
                msgs: vec![zeroed_msg; slots],
                iovecs: vec![
                    libc::iovec {
                        iov_base: std::ptr::null_mut(),
                        iov_len: 0
                    };
                    slots
                ],
                names: vec![zeroed_name; slots],
            }
        }
    }

    // SAFETY: the raw pointers inside are rebuilt before every use and only
    // point into buffers owned by the same BatchReceiver.
    unsafe impl Send for Headers {}

    pub fn recv(
        rx: &mut BatchReceiver,
        socket: &UdpSocket,
        wait: Option<Duration>,
    ) -> io::Result<usize> {
        // Take what is queued without waiting first: under load there
        // always is something, and then the timeout below (one more system
        // call per batch) is not needed at all.
        match recv_flags(rx, socket, libc::MSG_DONTWAIT) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            other => return other,
        }
        let Some(timeout) = wait else {
            return Ok(0);
        };
        // SO_RCVTIMEO of zero would mean "forever".
        socket.set_read_timeout(Some(timeout.max(Duration::from_micros(1))))?;
        recv_flags(rx, socket, libc::MSG_WAITFORONE)
    }

    fn recv_flags(
        rx: &mut BatchReceiver,
        socket: &UdpSocket,
        flags: libc::c_int,
    ) -> io::Result<usize> {
        let slots = rx.lens.len();
        let h = &mut rx.sys;
        for i in 0..slots {
            h.iovecs[i] = libc::iovec {
                iov_base: rx.buffers[i * rx.slot_len..].as_mut_ptr().cast(),
                iov_len: rx.slot_len,
            };
            let hdr = &mut h.msgs[i].msg_hdr;
            hdr.msg_name = (&mut h.names[i] as *mut libc::sockaddr_storage).cast();
            hdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdr.msg_iov = &mut h.iovecs[i];
            hdr.msg_iovlen = 1;
            hdr.msg_control = std::ptr::null_mut();
            hdr.msg_controllen = 0;
            hdr.msg_flags = 0;
            h.msgs[i].msg_len = 0;
        }
        // SAFETY: every header points at live buffers of the stated lengths.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                h.msgs.as_mut_ptr(),
                slots as libc::c_uint,
                flags,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        for i in 0..n {
            rx.lens[i] = h.msgs[i].msg_len as usize;
            rx.addrs[i] = to_socket_addr(&h.names[i]);
        }
        Ok(n)
    }

    fn to_socket_addr(storage: &libc::sockaddr_storage) -> SocketAddr {
        match i32::from(storage.ss_family) {
            libc::AF_INET => {
                // SAFETY: the family says this storage holds a sockaddr_in.
                let a: &libc::sockaddr_in =
                    unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
                SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                    u16::from_be(a.sin_port),
                ))
            }
            libc::AF_INET6 => {
                // SAFETY: the family says this storage holds a sockaddr_in6.
                let a: &libc::sockaddr_in6 =
                    unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
                SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(a.sin6_addr.s6_addr),
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                ))
            }
            _ => SocketAddr::from(([0, 0, 0, 0], 0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receives_a_batch_with_senders_and_lengths() {
        let rx_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.send_to(&[1, 2, 3], rx_socket.local_addr().unwrap())
            .unwrap();
        b.send_to(&[4; 10], rx_socket.local_addr().unwrap())
            .unwrap();
        a.send_to(&[5; 20], rx_socket.local_addr().unwrap())
            .unwrap();
        let mut rx = BatchReceiver::new(8, 16);
        let mut got = Vec::new();
        while got.len() < 3 {
            let n = rx.recv(&rx_socket, Some(Duration::from_secs(10))).unwrap();
            for i in 0..n {
                let (from, bytes) = rx.get(i);
                got.push((from, bytes.to_vec()));
            }
        }
        assert_eq!(got[0], (a.local_addr().unwrap(), vec![1, 2, 3]));
        assert_eq!(got[1], (b.local_addr().unwrap(), vec![4; 10]));
        // Longer than a slot: truncated to the slot, detectable by length.
        assert_eq!(got[2], (a.local_addr().unwrap(), vec![5; 16]));
        assert_eq!(rx.recv(&rx_socket, None).unwrap(), 0, "nothing queued");
    }
}
