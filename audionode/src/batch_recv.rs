//! Receives datagrams in batches: one `recvmmsg` system call returns every
//! datagram already queued (Linux), with a plain `recv_from` loop elsewhere.
//! All buffers are allocated once.
//!
//! On Linux each datagram also carries the kernel's arrival timestamp
//! (`SO_TIMESTAMPNS`, see [`enable_arrival_timestamps`]), given as its age
//! when the batch was taken: the time a datagram waited in the socket is
//! then not mistaken for network delay, however late the batch is drained.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// Reusable buffers for up to `slots` datagrams of up to `slot_len` bytes.
pub struct BatchReceiver {
    slot_len: usize,
    buffers: Vec<u8>,
    lens: Vec<usize>,
    addrs: Vec<SocketAddr>,
    ages: Vec<Option<Duration>>,
    count: usize,
    #[cfg(target_os = "linux")]
    sys: linux::Headers,
}

/// Asks the kernel to timestamp every datagram arriving on `socket`, so
/// [`BatchReceiver::age`] can tell how long each one waited. Linux only; a
/// no-op elsewhere.
pub fn enable_arrival_timestamps(socket: &UdpSocket) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let on: libc::c_int = 1;
        // SAFETY: a valid socket and an int option value of the stated size.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = socket;
    Ok(())
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
            ages: vec![None; slots],
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

    /// Waits up to `timeout` until any of `sockets` is readable; `false`
    /// when the time ran out. (Then take each socket's batch with
    /// [`BatchReceiver::recv`] and no wait.)
    pub fn wait_any(sockets: &[&UdpSocket], timeout: Duration) -> io::Result<bool> {
        #[cfg(target_os = "linux")]
        return linux::wait_any(sockets, timeout);
        #[cfg(not(target_os = "linux"))]
        {
            let _ = sockets;
            std::thread::sleep(timeout.min(Duration::from_millis(1)));
            Ok(true)
        }
    }

    /// How long the `i`-th datagram of the last batch had been waiting in
    /// the socket when the batch was taken (`None`: no kernel timestamp).
    pub fn age(&self, i: usize) -> Option<Duration> {
        assert!(i < self.count, "datagram {i} of a batch of {}", self.count);
        self.ages[i]
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
                rx.ages[n] = None;
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
    //! `ppoll(2)` for up to the wait (a high-resolution timer), then one
    //! `recvmmsg(2)` with `MSG_DONTWAIT` takes every queued datagram; with
    //! no wait, just the `recvmmsg`.

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
        /// Ancillary data per slot (the timestamp's cmsg needs 32 bytes);
        /// u64 elements for cmsghdr's alignment.
        controls: Vec<[u64; CONTROL_WORDS]>,
    }

    const CONTROL_WORDS: usize = 8;

    /// A kernel timestamp older than this is taken as a wall-clock step
    /// between arrival and now, not as a real wait: the age is capped.
    const MAX_AGE: Duration = Duration::from_secs(2);

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
                controls: vec![[0; CONTROL_WORDS]; slots],
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
        // Under load the run loop asks for no wait at all (its wake-up plan
        // drains at intervals). A timed wait is a ppoll, not SO_RCVTIMEO:
        // the kernel keeps a socket timeout in jiffies, so a 40 µs timeout
        // became a whole tick (4 ms at HZ=250) and the node sent its blocks
        // when the next datagram happened to wake it, not at their
        // deadlines. ppoll sleeps on a high-resolution timer.
        if let Some(timeout) = wait {
            if !wait_readable(socket, timeout)? {
                return Ok(0);
            }
        }
        recv_flags(rx, socket, libc::MSG_DONTWAIT)
    }

    /// Most sockets [`wait_any`] watches.
    const MAX_WAIT_FDS: usize = 32;

    /// Waits up to `timeout` for any of `sockets` (the first
    /// [`MAX_WAIT_FDS`]) to become readable.
    pub fn wait_any(sockets: &[&UdpSocket], timeout: Duration) -> io::Result<bool> {
        let mut fds = [libc::pollfd {
            fd: -1,
            events: libc::POLLIN,
            revents: 0,
        }; MAX_WAIT_FDS];
        let n = sockets.len().min(MAX_WAIT_FDS);
        for (fd, socket) in fds.iter_mut().zip(sockets) {
            fd.fd = socket.as_raw_fd();
        }
        poll(&mut fds[..n], timeout)
    }

    /// Waits up to `timeout` for `socket` to become readable; `false` when
    /// the time ran out (or a signal interrupted the wait).
    fn wait_readable(socket: &UdpSocket, timeout: Duration) -> io::Result<bool> {
        let mut fds = [libc::pollfd {
            fd: socket.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        poll(&mut fds, timeout)
    }

    fn poll(fds: &mut [libc::pollfd], timeout: Duration) -> io::Result<bool> {
        let ts = libc::timespec {
            tv_sec: timeout.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
            tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
        };
        // SAFETY: valid pollfds, a valid timespec, no signal mask.
        let ready = unsafe {
            libc::ppoll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                &ts,
                std::ptr::null(),
            )
        };
        if ready < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            };
        }
        Ok(ready > 0)
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
            hdr.msg_control = h.controls[i].as_mut_ptr().cast();
            hdr.msg_controllen = mem::size_of::<[u64; CONTROL_WORDS]>() as _;
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
        let now = realtime_now();
        for i in 0..n {
            rx.lens[i] = h.msgs[i].msg_len as usize;
            rx.addrs[i] = to_socket_addr(&h.names[i]);
            rx.ages[i] =
                arrival_timestamp(&h.msgs[i].msg_hdr).map(|at| now.saturating_sub(at).min(MAX_AGE));
        }
        Ok(n)
    }

    /// CLOCK_REALTIME, the clock `SO_TIMESTAMPNS` stamps with.
    fn realtime_now() -> Duration {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid clock id and a valid out-pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
        timespec_to_duration(&ts)
    }

    fn timespec_to_duration(ts: &libc::timespec) -> Duration {
        Duration::new(
            u64::try_from(ts.tv_sec).unwrap_or(0),
            u32::try_from(ts.tv_nsec).unwrap_or(0).min(999_999_999),
        )
    }

    /// The `SCM_TIMESTAMPNS` control message of a received datagram.
    fn arrival_timestamp(hdr: &libc::msghdr) -> Option<Duration> {
        // SAFETY: `hdr` was filled by recvmmsg; its control buffer and
        // length describe valid ancillary data, walked with the libc macros.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET
                    && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
                {
                    let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                    return Some(timespec_to_duration(&ts));
                }
                cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
            }
        }
        None
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

    #[cfg(target_os = "linux")]
    #[test]
    fn kernel_timestamps_give_each_datagram_its_wait() {
        let rx_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        enable_arrival_timestamps(&rx_socket).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx_socket.local_addr().unwrap();
        let mut rx = BatchReceiver::new(8, 16);
        // The kernel switches arrival stamping on a moment after the first
        // socket asks (until then it stamps on read), so try a few rounds.
        let mut rounds = Vec::new();
        for _ in 0..20 {
            tx.send_to(&[1], to).unwrap();
            // The first datagram waits in the socket at least this long.
            std::thread::sleep(Duration::from_millis(30));
            tx.send_to(&[2], to).unwrap();
            let mut ages = Vec::new();
            while ages.len() < 2 {
                let n = rx.recv(&rx_socket, Some(Duration::from_secs(10))).unwrap();
                for i in 0..n {
                    ages.push((rx.get(i).1[0], rx.age(i).expect("timestamped")));
                }
            }
            assert_eq!((ages[0].0, ages[1].0), (1, 2));
            if ages[0].1 >= Duration::from_millis(30) {
                assert!(ages[0].1 > ages[1].1, "{ages:?}");
                return;
            }
            rounds.push(ages);
        }
        panic!("no arrival timestamps: {rounds:?}");
    }

    #[test]
    fn without_timestamps_there_is_no_age() {
        let rx_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .send_to(&[7], rx_socket.local_addr().unwrap())
            .unwrap();
        let mut rx = BatchReceiver::new(4, 16);
        while rx.recv(&rx_socket, Some(Duration::from_secs(10))).unwrap() == 0 {}
        assert_eq!(rx.age(0), None);
    }
}
