//! Request bodies, generated deterministically (same bytes on every run and machine).
//!
//! * small: one short user message;
//! * large: a Claude-Code-sized request of about 75 KB: a long system prompt, 24 tool schemas and a long
//!   conversation with tool calls and results (for /openai the equivalent OpenAI shape with 24 function tools);
//! * sse: the small body with `"stream": true` (the mock answers with ~25 SSE events when `chunks: 20`).

use serde_json::{json, Value};

pub const MODEL: &str = "claude-sonnet-4-6";
/// The model an OpenAI client would send; CCGate maps it to its default Claude model.
pub const OPENAI_MODEL: &str = "gpt-4o";
/// Target size of the large body, in bytes.
pub const LARGE_TARGET: usize = 75 * 1024;
pub const TOOL_COUNT: usize = 24;

/// Deterministic pseudo-random words (xorshift over a fixed vocabulary).
struct Words {
    state: u64,
}

const VOCAB: &[&str] = &[
    "the", "file", "function", "return", "value", "error", "test", "build", "module", "crate",
    "path", "config", "request", "response", "stream", "token", "budget", "tenant", "upstream",
    "header", "parse", "string", "vector", "index", "buffer", "async", "await", "future",
    "handler", "router", "server", "client", "latency", "thread", "memory", "cache", "read",
    "write", "lock", "update", "delete", "insert", "select", "query", "schema", "field", "struct",
    "enum", "match", "option", "result", "trait", "impl", "closure", "iterator", "slice", "bytes",
    "json", "when", "then", "because", "after", "before", "every", "only", "never", "always",
    "should", "must", "could",
];

impl Words {
    fn new(seed: u64) -> Self {
        Words {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        }
    }
    fn next(&mut self) -> &'static str {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        VOCAB[(x % VOCAB.len() as u64) as usize]
    }
    fn text(&mut self, approx_len: usize) -> String {
        let mut s = String::with_capacity(approx_len + 16);
        let mut n = 0usize;
        while s.len() < approx_len {
            if !s.is_empty() {
                s.push(if n % 13 == 12 { '\n' } else { ' ' });
            }
            s.push_str(self.next());
            n += 1;
        }
        s
    }
}

fn tool_names() -> Vec<String> {
    let base = [
        "Bash",
        "Read",
        "Write",
        "Edit",
        "MultiEdit",
        "Glob",
        "Grep",
        "LS",
        "WebFetch",
        "WebSearch",
        "TodoWrite",
        "NotebookRead",
        "NotebookEdit",
        "Task",
        "ExitPlanMode",
        "BashOutput",
        "KillShell",
        "SlashCommand",
    ];
    (0..TOOL_COUNT)
        .map(|i| {
            if i < base.len() {
                base[i].to_string()
            } else {
                format!("mcp__server__tool_{i}")
            }
        })
        .collect()
}

/// A JSON schema of a realistic size (~1.1 KB) for tool `i`.
fn tool_schema(w: &mut Words, i: usize) -> Value {
    let mut props = serde_json::Map::new();
    for p in 0..6 {
        let name = format!("param_{i}_{p}");
        let prop = match p % 3 {
            0 => json!({"type": "string", "description": w.text(90)}),
            1 => json!({"type": "integer", "description": w.text(60), "minimum": 0}),
            _ => json!({"type": "array", "items": {"type": "string"}, "description": w.text(70)}),
        };
        props.insert(name, prop);
    }
    json!({
        "type": "object",
        "properties": props,
        "required": [format!("param_{i}_0")],
        "additionalProperties": false,
        "$schema": "http://json-schema.org/draft-07/schema#"
    })
}

/// The conversation: (role, kind, text) turns shared by both shapes. kind: 0 = text, 1 = tool call, 2 = tool result.
struct Turn {
    role: &'static str,
    kind: u8,
    text: String,
    tool: String,
    id: String,
}

fn conversation(w: &mut Words, names: &[String], approx_total: usize) -> Vec<Turn> {
    let mut turns = vec![Turn {
        role: "user",
        kind: 0,
        text: w.text(1500),
        tool: String::new(),
        id: String::new(),
    }];
    let mut total = 1500;
    let mut i = 0usize;
    while total < approx_total {
        let id = format!("toolu_bench_{i:04}");
        let tool = names[i % names.len()].clone();
        turns.push(Turn {
            role: "assistant",
            kind: 1,
            text: w.text(120),
            tool: tool.clone(),
            id: id.clone(),
        });
        let result = w.text(1800);
        total += result.len() + 200;
        turns.push(Turn {
            role: "user",
            kind: 2,
            text: result,
            tool,
            id,
        });
        i += 1;
    }
    turns.push(Turn {
        role: "user",
        kind: 0,
        text: w.text(400),
        tool: String::new(),
        id: String::new(),
    });
    turns
}

pub fn anthropic_small(stream: bool) -> Vec<u8> {
    let mut v = json!({
        "model": MODEL,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hello there"}]
    });
    if stream {
        v["stream"] = json!(true);
    }
    serde_json::to_vec(&v).expect("json")
}

pub fn openai_small(stream: bool) -> Vec<u8> {
    let mut v = json!({
        "model": OPENAI_MODEL,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hello there"}]
    });
    if stream {
        v["stream"] = json!(true);
    }
    serde_json::to_vec(&v).expect("json")
}

/// Builds a large body with conversation size `conv`; the caller searches `conv` to hit [`LARGE_TARGET`].
fn anthropic_large_with(conv: usize) -> Vec<u8> {
    let mut w = Words::new(7);
    let names = tool_names();
    let system = vec![
        json!({"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."}),
        json!({"type": "text", "text": w.text(14_000), "cache_control": {"type": "ephemeral"}}),
    ];
    let tools: Vec<Value> = names
        .iter()
        .enumerate()
        .map(|(i, n)| json!({"name": n, "description": w.text(300), "input_schema": tool_schema(&mut w, i)}))
        .collect();
    let messages: Vec<Value> = conversation(&mut w, &names, conv)
        .into_iter()
        .map(|t| match t.kind {
            0 => json!({"role": t.role, "content": [{"type": "text", "text": t.text}]}),
            1 => json!({"role": t.role, "content": [
                {"type": "text", "text": t.text},
                {"type": "tool_use", "id": t.id, "name": t.tool, "input": {"command": "ls -la src", "description": "list"}}
            ]}),
            _ => json!({"role": t.role, "content": [{"type": "tool_result", "tool_use_id": t.id, "content": t.text}]}),
        })
        .collect();
    let v = json!({
        "model": MODEL,
        "max_tokens": 32000,
        "system": system,
        "tools": tools,
        "messages": messages,
        "metadata": {"user_id": "user_bench_account__session_00000000-0000-0000-0000-000000000000"},
    });
    serde_json::to_vec(&v).expect("json")
}

fn openai_large_with(conv: usize) -> Vec<u8> {
    let mut w = Words::new(7);
    let names = tool_names();
    let system = format!(
        "You are Claude Code, Anthropic's official CLI for Claude.\n{}",
        w.text(14_000)
    );
    let tools: Vec<Value> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            json!({"type": "function", "function": {"name": n, "description": w.text(300), "parameters": tool_schema(&mut w, i)}})
        })
        .collect();
    let mut messages = vec![json!({"role": "system", "content": system})];
    for t in conversation(&mut w, &names, conv) {
        messages.push(match t.kind {
            0 => json!({"role": t.role, "content": t.text}),
            1 => json!({"role": "assistant", "content": t.text, "tool_calls": [
                {"id": t.id, "type": "function", "function": {"name": t.tool, "arguments": "{\"command\":\"ls -la src\",\"description\":\"list\"}"}}
            ]}),
            _ => json!({"role": "tool", "tool_call_id": t.id, "content": t.text}),
        });
    }
    let v = json!({
        "model": OPENAI_MODEL,
        "max_tokens": 32000,
        "tools": tools,
        "messages": messages,
        "user": "bench-user",
    });
    serde_json::to_vec(&v).expect("json")
}

// Used by `examples/dump_bodies` (bench/callgrind.sh responses-large); the load generator has no Responses path yet.
#[allow(dead_code)]
/// The same content as [`openai_large_with`] in the Responses API's shape (`/openai/v1/responses`): system text as
/// `instructions`, the turns as input items (`message`, `function_call`, `function_call_output`), flat tools.
fn responses_large_with(conv: usize) -> Vec<u8> {
    let mut w = Words::new(7);
    let names = tool_names();
    let system = format!(
        "You are Claude Code, Anthropic's official CLI for Claude.\n{}",
        w.text(14_000)
    );
    let tools: Vec<Value> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            json!({"type": "function", "name": n, "description": w.text(300), "parameters": tool_schema(&mut w, i), "strict": false})
        })
        .collect();
    let mut input = Vec::new();
    for t in conversation(&mut w, &names, conv) {
        match t.kind {
            0 => input.push(json!({"type": "message", "role": t.role, "content": [{"type": "input_text", "text": t.text}]})),
            1 => {
                input.push(json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": t.text}]}));
                input.push(json!({"type": "function_call", "call_id": t.id, "name": t.tool,
                    "arguments": "{\"command\":\"ls -la src\",\"description\":\"list\"}"}));
            }
            _ => input.push(json!({"type": "function_call_output", "call_id": t.id, "output": t.text})),
        }
    }
    let v = json!({
        "model": OPENAI_MODEL,
        "max_output_tokens": 32000,
        "instructions": system,
        "tools": tools,
        "input": input,
        "user": "bench-user",
        "store": false,
    });
    serde_json::to_vec(&v).expect("json")
}

/// Largest conversation size whose body stays at or under the target (monotone in `conv`).
fn fit_conv(build: fn(usize) -> Vec<u8>) -> usize {
    let mut conv = 20_000;
    loop {
        if build(conv + 2_000).len() > LARGE_TARGET {
            return conv;
        }
        conv += 2_000;
    }
}

fn fit(build: fn(usize) -> Vec<u8>) -> Vec<u8> {
    build(fit_conv(build))
}

pub fn anthropic_large() -> Vec<u8> {
    fit(anthropic_large_with)
}

pub fn openai_large() -> Vec<u8> {
    fit(openai_large_with)
}

/// [`openai_large`]'s conversation, word for word, as a Responses request (a few bytes larger: item types).
#[allow(dead_code)]
pub fn responses_large() -> Vec<u8> {
    responses_large_with(fit_conv(openai_large_with))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_bodies_are_deterministic_and_sized() {
        let a = anthropic_large();
        assert_eq!(a, anthropic_large());
        assert!(
            a.len() > 70 * 1024 && a.len() <= LARGE_TARGET,
            "{}",
            a.len()
        );
        let v: Value = serde_json::from_slice(&a).unwrap();
        assert_eq!(v["tools"].as_array().unwrap().len(), TOOL_COUNT);
        let o = openai_large();
        assert!(
            o.len() > 70 * 1024 && o.len() <= LARGE_TARGET,
            "{}",
            o.len()
        );
        let v: Value = serde_json::from_slice(&o).unwrap();
        assert_eq!(v["tools"].as_array().unwrap().len(), TOOL_COUNT);
        let r = responses_large();
        assert!(
            r.len().abs_diff(o.len()) < 4 * 1024,
            "{} vs {}",
            r.len(),
            o.len()
        );
        let v: Value = serde_json::from_slice(&r).unwrap();
        assert_eq!(v["tools"].as_array().unwrap().len(), TOOL_COUNT);
    }
}
