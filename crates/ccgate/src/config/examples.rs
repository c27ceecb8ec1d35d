//! The example config files, embedded in the binary so that `ccgate init` and a first start work from a
//! bare binary. They are the same files as `config/*.json.example` in the repository.

use rand::distributions::Alphanumeric;
use rand::Rng;
use std::path::Path;

pub const SERVER_EXAMPLE: &str = include_str!("../../../../config/server.json.example");
pub const UPSTREAMS_EXAMPLE: &str = include_str!("../../../../config/upstreams.json.example");
pub const TENANTS_EXAMPLE: &str = include_str!("../../../../config/tenants.json.example");

pub const FILES: [(&str, &str); 3] = [
    ("server.json.example", SERVER_EXAMPLE),
    ("upstreams.json.example", UPSTREAMS_EXAMPLE),
    ("tenants.json.example", TENANTS_EXAMPLE),
];

pub fn random_token(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// `ccgate init`: writes the `*.json.example` files and, where missing, the live `*.json` files.
/// Never overwrites anything. Returns the paths written.
pub fn init(dir: &Path) -> std::io::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for (name, text) in FILES {
        let example = dir.join(name);
        if write_new(&example, text)? {
            written.push(example.display().to_string());
        }
    }
    Ok(written)
}

fn write_new(path: &Path, text: &str) -> std::io::Result<bool> {
    use std::io::Write;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(mut f) => {
            f.write_all(text.as_bytes())?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Credentials generated on a first start; printed once.
pub struct Bootstrap {
    pub admin_password: String,
    pub tenant_key: String,
}

/// First start with no live config files: create them from the examples, with a random admin password and one demo
/// tenant key. The upstream key is read from `ANTHROPIC_API_KEY` (empty when unset).
pub fn bootstrap(dir: &Path) -> std::io::Result<Bootstrap> {
    init(dir)?;
    let boot = Bootstrap {
        admin_password: random_token(24),
        tenant_key: format!("ccg-{}", random_token(40)),
    };
    let server = SERVER_EXAMPLE.replace(
        "\"your-secure-password\"",
        &format!("{:?}", boot.admin_password),
    );
    let upstreams =
        UPSTREAMS_EXAMPLE.replace("\"${ANTHROPIC_API_KEY}\"", "\"${ANTHROPIC_API_KEY:-}\"");
    let tenants = TENANTS_EXAMPLE
        .replace("\"tenant-1\"", "\"demo\"")
        .replace("\"fenger\"", "\"Demo tenant\"")
        .replace("\"your-unique-api-key\"", &format!("{:?}", boot.tenant_key))
        .replace("[\"*sonnet*\", \"*haiku*\"]", "[\"*\"]");
    write_new(&dir.join("server.json"), &server)?;
    write_new(&dir.join("upstreams.json"), &upstreams)?;
    write_new(&dir.join("tenants.json"), &tenants)?;
    Ok(boot)
}
