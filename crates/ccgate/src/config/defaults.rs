//! Credentials that are not secret: the example and default values of the original's files, this project's
//! examples and the passwords every guesser tries first. One list, so the loader's warnings, the login refusal
//! and the dashboard's message agree.

/// Admin passwords refused whatever their length (compared case-insensitively, ignoring surrounding spaces).
pub const KNOWN_ADMIN_PASSWORDS: &[&str] = &[
    // The original's default and the examples of both projects.
    "changeme",
    "change-me",
    "change_me",
    "changeit",
    "your-secure-password",
    "your_secure_password",
    "yoursecurepassword",
    "your-password",
    "your-admin-password",
    "ccgate",
    "ccgate123",
    // What guessers try first.
    "admin",
    "admin123",
    "admin1234",
    "administrator",
    "password",
    "password1",
    "password123",
    "passw0rd",
    "p@ssw0rd",
    "secret",
    "default",
    "letmein",
    "welcome",
    "welcome1",
    "qwerty123",
    "qwertyuiop",
    "iloveyou",
    "12345678",
    "123456789",
    "1234567890",
    "abc12345",
    "test1234",
];

/// Tenant keys copied from examples: anyone who read the same README can use them.
pub const EXAMPLE_TENANT_KEYS: &[&str] = &[
    "your-unique-api-key",
    "sk-your-tenant-key",
    "your-tenant-key",
    "your-api-key",
    "sk-your-api-key",
    "your-key-here",
    "tenant-key",
    "api-key",
    "changeme",
];

pub const MIN_ADMIN_PASSWORD_LEN: usize = 8;
pub const MIN_TENANT_KEY_LEN: usize = 16;

/// Why an admin password cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeakPassword {
    Missing,
    TooShort,
    KnownDefault,
}

impl WeakPassword {
    /// For log lines and the login page: what is wrong and where to fix it (never the password itself).
    pub fn explain(self) -> &'static str {
        match self {
            WeakPassword::Missing => "admin.password is not set",
            WeakPassword::TooShort => "admin.password is shorter than 8 characters",
            WeakPassword::KnownDefault => {
                "admin.password is a known default or example password (such as \"changeme\" or \"your-secure-password\")"
            }
        }
    }
}

fn listed(list: &[&str], value: &str) -> bool {
    let v = value.trim();
    list.iter().any(|k| k.eq_ignore_ascii_case(v))
}

pub fn admin_password_problem(password: &str) -> Option<WeakPassword> {
    if password.is_empty() {
        Some(WeakPassword::Missing)
    } else if listed(KNOWN_ADMIN_PASSWORDS, password) {
        Some(WeakPassword::KnownDefault)
    } else if password.chars().count() < MIN_ADMIN_PASSWORD_LEN {
        Some(WeakPassword::TooShort)
    } else {
        None
    }
}

pub fn is_example_tenant_key(key: &str) -> bool {
    listed(EXAMPLE_TENANT_KEYS, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_examples_are_refused_whatever_their_case() {
        for p in [
            "changeme",
            "ChangeMe",
            " your-secure-password ",
            "admin",
            "PASSWORD",
            "admin123",
        ] {
            assert_eq!(
                admin_password_problem(p),
                Some(WeakPassword::KnownDefault),
                "{p}"
            );
        }
        assert_eq!(admin_password_problem(""), Some(WeakPassword::Missing));
        assert_eq!(admin_password_problem("k3y!"), Some(WeakPassword::TooShort));
        assert_eq!(admin_password_problem("correct horse battery"), None);
        // Every listed password is caught by the list itself, short or not.
        for p in KNOWN_ADMIN_PASSWORDS {
            assert_eq!(admin_password_problem(p), Some(WeakPassword::KnownDefault));
        }
    }

    #[test]
    fn example_tenant_keys_are_recognised() {
        assert!(is_example_tenant_key("your-unique-api-key"));
        assert!(is_example_tenant_key("SK-YOUR-TENANT-KEY"));
        assert!(!is_example_tenant_key("ccg-4f9a1c0e7b2d4a8f9c3e"));
    }
}
