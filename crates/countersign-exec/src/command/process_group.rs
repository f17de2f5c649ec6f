//! The command executor's process group: the program starts in a group of its own, which is
//! killed whole (so what it started dies with it), and on Linux it dies if the gateway does.
//! The crate's only `unsafe` lives here; nothing here decides when to kill, `command` does.
//! Outside Unix the program alone is killed.

use std::process::ExitStatus;

/// Puts the program in a new process group (its id is the program's pid) and, on Linux, makes
/// it die with the gateway.
#[cfg(unix)]
pub(super) fn isolate(command: &mut tokio::process::Command) {
    command.process_group(0);
    #[cfg(target_os = "linux")]
    die_with_gateway(command);
}

#[cfg(target_os = "linux")]
fn die_with_gateway(command: &mut tokio::process::Command) {
    // Pids fit in a `pid_t`.
    let gateway = std::process::id() as libc::pid_t;
    // SAFETY: `pre_exec`'s closure runs in the child after `fork` and before `exec`, where only
    // async-signal-safe work is sound (another thread of the gateway may have held a lock, such
    // as the allocator's, when it forked). The closure captures one `pid_t` (Copy, nothing to
    // drop) and calls only `prctl` and `getppid`, plain system calls that are async-signal-safe;
    // on failure it makes an `io::Error` from `errno` or a raw code, which stores the integer
    // and does not allocate. It takes no lock, allocates nothing, writes to no stdio and reads
    // no state shared with other threads.
    //
    // `PR_SET_PDEATHSIG` fires when the thread that forked exits; the `getppid` check covers a
    // gateway that died before the `prctl` took effect (the child was then already reparented).
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) == -1
            {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != gateway {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// SIGKILLs the process group `group`, led by `child`, which must not have been reaped yet (so
/// the group's id cannot belong to anyone else). Without a group, kills `child`.
#[cfg(unix)]
pub(super) fn kill(child: &mut tokio::process::Child, group: Option<u32>) {
    match group {
        Some(g) => kill_group(g),
        None => {
            let _ = child.start_kill();
        }
    }
}

/// SIGKILLs what is left of `group` just after its leader was reaped.
#[cfg(unix)]
pub(super) fn kill_leftovers(group: Option<u32>) {
    if let Some(g) = group {
        kill_group(g);
    }
}

#[cfg(unix)]
fn kill_group(group: u32) {
    let Ok(pgid) = libc::pid_t::try_from(group) else {
        return;
    };
    if pgid <= 1 {
        return;
    }
    // SAFETY: `kill` takes plain integers and has no memory-safety preconditions; a negative pid
    // names the process group. ESRCH (nobody left) is the expected failure.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// The signal that ended `status`, by name.
#[cfg(unix)]
pub(super) fn signal_of(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    let Some(signal) = status.signal() else {
        return "a signal".into();
    };
    let name = match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => return format!("signal {signal}"),
    };
    format!("{name} (signal {signal})")
}

#[cfg(not(unix))]
pub(super) fn isolate(_command: &mut tokio::process::Command) {}

#[cfg(not(unix))]
pub(super) fn kill(child: &mut tokio::process::Child, _group: Option<u32>) {
    let _ = child.start_kill();
}

#[cfg(not(unix))]
pub(super) fn kill_leftovers(_group: Option<u32>) {}

#[cfg(not(unix))]
pub(super) fn signal_of(_status: &ExitStatus) -> String {
    "a signal".into()
}
