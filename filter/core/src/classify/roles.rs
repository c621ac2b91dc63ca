//! Which role wrote each text field of a request, read from its JSON path
//! (as `wire::for_each_text_mut` reports it) and the body's structure.
//! Taken before the walk, since the walk holds the body mutably.

use serde_json::Value;

use super::Role;

/// Per item of `messages` / `input`: its role, and per content part an
/// override (an Anthropic `tool_result` inside a `user` message is a tool's text).
#[derive(Debug, Default)]
pub struct Roles {
    messages: Vec<(Role, Vec<Option<Role>>)>,
    input: Vec<(Role, Vec<Option<Role>>)>,
}

fn message_role(role: Option<&str>) -> Role {
    match role {
        Some("user") => Role::User,
        Some("system" | "developer") => Role::System,
        Some("assistant" | "model") => Role::Assistant,
        Some("tool" | "function" | "ipython") => Role::Tool,
        _ => Role::Other,
    }
}

fn part_role(part: &Value) -> Option<Role> {
    match part.get("type").and_then(Value::as_str)? {
        "tool_result" | "function_call_output" | "mcp_tool_result" => Some(Role::Tool),
        "document" | "search_result" => Some(Role::Retrieved),
        "tool_use" | "function_call" => Some(Role::Assistant),
        _ => None,
    }
}

fn item(value: &Value, default: Role) -> (Role, Vec<Option<Role>>) {
    let role = match value.get("role").and_then(Value::as_str) {
        Some(r) => message_role(Some(r)),
        None => part_role(value).unwrap_or(default),
    };
    let parts = match value.get("content") {
        Some(Value::Array(parts)) => parts.iter().map(part_role).collect(),
        _ => Vec::new(),
    };
    (role, parts)
}

/// `name[i]...` → `(i, rest)`.
fn indexed<'a>(path: &'a str, name: &str) -> Option<(usize, &'a str)> {
    let rest = path.strip_prefix(name)?.strip_prefix('[')?;
    let close = rest.find(']')?;
    let index = rest.get(..close)?.parse().ok()?;
    Some((index, rest.get(close + 1..)?))
}

impl Roles {
    pub fn of(body: &Value) -> Self {
        let list = |key: &str, default: Role| match body.get(key) {
            Some(Value::Array(items)) => items.iter().map(|v| item(v, default)).collect(),
            _ => Vec::new(),
        };
        Self { messages: list("messages", Role::Other), input: list("input", Role::User) }
    }

    pub fn role_of(&self, path: &str) -> Role {
        for (name, items) in [("messages", &self.messages), ("input", &self.input)] {
            if let Some((i, rest)) = indexed(path, name) {
                let Some((role, parts)) = items.get(i) else { return Role::Other };
                if let Some((j, _)) = indexed(rest, ".content") {
                    if let Some(Some(part)) = parts.get(j) {
                        return *part;
                    }
                }
                return *role;
            }
        }
        let head = path.split(['.', '[']).next().unwrap_or("");
        match head {
            // A plain-text body, completions `prompt`, Responses string `input`.
            "" | "prompt" | "input" => Role::User,
            "system" | "instructions" | "tools" | "functions" => Role::System,
            "documents" | "context" => Role::Retrieved,
            _ => Role::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn roles_follow_messages_and_content_parts() {
        let body = json!({
            "system": "be brief",
            "messages": [
                {"role": "system", "content": "x"},
                {"role": "user", "content": [{"type": "text", "text": "hi"},
                    {"type": "tool_result", "tool_use_id": "t", "content": "result"},
                    {"type": "document", "source": {"type": "text", "data": "doc"}}]},
                {"role": "assistant", "content": "ok"},
                {"role": "tool", "tool_call_id": "c", "content": "out"}
            ],
            "tools": [{"type": "function", "function": {"name": "f", "description": "d"}}]
        });
        let roles = Roles::of(&body);
        assert_eq!(roles.role_of("system"), Role::System);
        assert_eq!(roles.role_of("messages[0].content"), Role::System);
        assert_eq!(roles.role_of("messages[1].content[0].text"), Role::User);
        assert_eq!(roles.role_of("messages[1].content[1].content"), Role::Tool);
        assert_eq!(roles.role_of("messages[1].content[2].source.data"), Role::Retrieved);
        assert_eq!(roles.role_of("messages[2].content"), Role::Assistant);
        assert_eq!(roles.role_of("messages[3].content"), Role::Tool);
        assert_eq!(roles.role_of("messages[9].content"), Role::Other);
        assert_eq!(roles.role_of("tools[0].function.description"), Role::System);
        assert_eq!(roles.role_of("metadata.note"), Role::Other);
    }

    #[test]
    fn responses_input_items() {
        let body = json!({"input": [
            {"role": "user", "content": [{"type": "input_text", "text": "q"}]},
            {"type": "function_call_output", "call_id": "c", "output": "tool says"}
        ]});
        let roles = Roles::of(&body);
        assert_eq!(roles.role_of("input[0].content[0].text"), Role::User);
        assert_eq!(roles.role_of("input[1].output"), Role::Tool);
        assert_eq!(Roles::of(&json!({"input": "hello"})).role_of("input"), Role::User);
        assert_eq!(Roles::of(&json!({"prompt": "p"})).role_of("prompt"), Role::User);
    }
}
