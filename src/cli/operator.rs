//! Who an operator's action is recorded as: `$USER@host`, from the environment or the
//! password database.

/// Who an operator's action is recorded as: `$USER@host`.
pub fn operator() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(uid_name)
        .unwrap_or_else(|| format!("uid {}", current_uid()));
    format!("{user}@{}", crate::host::hostname())
}

fn current_uid() -> libc::uid_t {
    // SAFETY: getuid has no failure and no memory effects.
    unsafe { libc::getuid() }
}

/// The name of this process's user from the password database: under systemd, cron or a
/// container `$USER` is often unset.
fn uid_name() -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: passwd is plain data; getpwuid_r writes into `pwd` and `buf`, whose sizes we pass.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe {
        libc::getpwuid_r(
            current_uid(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: on success pw_name points at a NUL-terminated string inside `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned())
}
