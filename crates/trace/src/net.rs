//! How probes reach the program's ports: sockets made inside the sandbox's
//! network namespace, connected from whittle.
//!
//! A socket belongs to the namespace it was made in, wherever it is used
//! afterwards. So a small helper process joins the sandbox's user and network
//! namespaces (an ordinary user may not move a thread of its own process into
//! them: `setns` of a network namespace also wants CAP_SYS_ADMIN in the
//! caller's own user namespace) and hands back a fresh socket per request over
//! a unix socket pair. Probes then connect from any thread, as root or not.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;
use std::time::Duration;

/// Where probes connect.
pub(crate) struct Net {
    /// `None`: the host's network (`--network host`).
    factory: Option<Mutex<Factory>>,
}

struct Factory {
    channel: OwnedFd,
    pid: libc::pid_t,
}

impl Drop for Factory {
    fn drop(&mut self) {
        // Closing the channel ends the helper's loop; reap it.
        // SAFETY: shutdown and waitpid on our own fd and child.
        unsafe {
            libc::shutdown(self.channel.as_raw_fd(), libc::SHUT_RDWR);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
    }
}

impl Net {
    /// The host's network.
    pub(crate) fn host() -> Net {
        Net { factory: None }
    }

    /// The network of the sandbox whose user and network namespaces are these fds.
    pub(crate) fn sandbox(user: &OwnedFd, net: &OwnedFd) -> io::Result<Net> {
        let mut pair = [0; 2];
        // SAFETY: socketpair fills two fds.
        if unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                pair.as_mut_ptr(),
            )
        } != 0
        {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both fds were just made and are owned here.
        let (ours, theirs) =
            unsafe { (OwnedFd::from_raw_fd(pair[0]), OwnedFd::from_raw_fd(pair[1])) };
        let fds = [user.as_raw_fd(), net.as_raw_fd(), theirs.as_raw_fd()];
        // SAFETY: the child runs only `factory_child`: raw syscalls on these fds.
        let pid = unsafe {
            let rc = libc::fork();
            if rc == 0 {
                factory_child(fds[0], fds[1], fds[2]);
            }
            rc
        };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        drop(theirs);
        Ok(Net {
            factory: Some(Mutex::new(Factory { channel: ours, pid })),
        })
    }

    /// A new TCP socket in the probed network.
    fn socket(&self) -> io::Result<OwnedFd> {
        let Some(factory) = &self.factory else {
            // SAFETY: socket returns a new fd or -1.
            let fd =
                unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: a new fd owned here.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        };
        let f = factory
            .lock()
            .map_err(|_| io::Error::other("the socket helper is unusable"))?;
        // SAFETY: one byte to our own socket.
        if unsafe { libc::write(f.channel.as_raw_fd(), b"s".as_ptr().cast(), 1) } != 1 {
            return Err(io::Error::last_os_error());
        }
        receive_fd(f.channel.as_raw_fd())
    }

    /// Connects to `127.0.0.1:port` in the probed network within `timeout`.
    pub(crate) fn connect(&self, port: u16, timeout: Duration) -> io::Result<TcpStream> {
        let fd = self.socket()?;
        let stream = TcpStream::from(fd);
        // Non-blocking connect, then wait for it: std's connect_timeout needs an address, not a socket.
        stream.set_nonblocking(true)?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(Ipv4Addr::LOCALHOST).to_be(),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: connect with a sockaddr_in of the right size.
        let rc = unsafe {
            libc::connect(
                stream.as_raw_fd(),
                &sa as *const libc::sockaddr_in as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINPROGRESS) {
                return Err(e);
            }
            let mut pfd = libc::pollfd {
                fd: stream.as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            };
            let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
            // SAFETY: poll on one pollfd.
            let n = unsafe { libc::poll(&mut pfd, 1, ms) };
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connecting to {addr} timed out"),
                ));
            }
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            if let Some(e) = stream.take_error()? {
                return Err(e);
            }
        }
        stream.set_nonblocking(false)?;
        Ok(stream)
    }
}

/// Receives one fd sent with SCM_RIGHTS.
fn receive_fd(channel: RawFd) -> io::Result<OwnedFd> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = [0u64; 8];
    // SAFETY: msghdr points at the buffers above, which outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: as above.
    let n = unsafe { libc::recvmsg(channel, &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n <= 0 {
        return Err(io::Error::other("the socket helper is gone"));
    }
    // SAFETY: CMSG_FIRSTHDR/CMSG_DATA read the control buffer the kernel filled.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null() || (*cmsg).cmsg_type != libc::SCM_RIGHTS {
            return Err(io::Error::other(
                "the socket helper could not make a socket in the sandbox's network",
            ));
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const RawFd);
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// The helper: joins the namespaces, then answers each byte with a new socket
/// (or a bare byte when it cannot make one), until the channel closes.
///
/// SAFETY: call only in a freshly forked child; raw syscalls only.
unsafe fn factory_child(user: RawFd, net: RawFd, channel: RawFd) -> ! {
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    libc::prctl(libc::PR_SET_DUMPABLE, 0);
    // Root with CAP_SYS_ADMIN (on a host) joins the network namespace directly; root
    // without it (in a container) and ordinary users go through the sandbox's user
    // namespace, where they hold CAP_SYS_ADMIN as its owner.
    let joined = (libc::geteuid() == 0 && libc::setns(net, libc::CLONE_NEWNET) == 0)
        || (libc::setns(user, libc::CLONE_NEWUSER) == 0
            && libc::setns(net, libc::CLONE_NEWNET) == 0);
    // Keep only the channel.
    let c = channel as libc::c_uint;
    libc::syscall(libc::SYS_close_range, 0u32, c.saturating_sub(1), 0u32);
    libc::syscall(libc::SYS_close_range, c + 1, u32::MAX, 0u32);
    let mut byte = [0u8; 1];
    loop {
        let n = libc::read(channel, byte.as_mut_ptr().cast(), 1);
        if n <= 0 {
            if n < 0 && *libc::__errno_location() == libc::EINTR {
                continue;
            }
            libc::_exit(0);
        }
        let sock = if joined {
            libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0)
        } else {
            -1
        };
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let mut control = [0u64; 8];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if sock >= 0 {
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as _;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut RawFd, sock);
        }
        libc::sendmsg(channel, &msg, libc::MSG_NOSIGNAL);
        if sock >= 0 {
            libc::close(sock);
        }
    }
}
