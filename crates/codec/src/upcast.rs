//! Upcasters: old major versions of a message turned into the next, in one place.
//!
//! Compatible changes (a new field with a default) need no upcaster: Avro schema resolution
//! handles them. A breaking change gets a new major version (a new registry subject) and an
//! upcaster here from the version before. [`crate::Codec`] runs the chain on every decode of an
//! old message, so no other code ever sees an old shape.

use apache_avro::types::Value;

/// Turns a message of major version `from` into version `from + 1`.
pub struct Upcaster {
    /// Full name of the message.
    pub name: &'static str,
    /// The version it reads.
    pub from: u32,
    /// The transformation.
    pub apply: fn(Value) -> Result<Value, String>,
}

/// Every upcaster.
pub static UPCASTERS: &[Upcaster] =
    &[Upcaster { name: "visionlog.events.TaskCreated", from: 1, apply: task_created_v1_to_v2 }];

/// Runs the chain from version `from` to `to`.
pub(crate) fn run(name: &str, from: u32, to: u32, mut value: Value) -> Result<Value, (u32, String)> {
    for v in from..to {
        let up = UPCASTERS
            .iter()
            .find(|u| u.name == name && u.from == v)
            .ok_or_else(|| (v, format!("no upcaster from v{v}")))?;
        value = (up.apply)(value).map_err(|e| (v, e))?;
    }
    Ok(value)
}

fn take(fields: &mut Vec<(String, Value)>, name: &str) -> Result<Value, String> {
    let i = fields.iter().position(|(n, _)| n == name).ok_or_else(|| format!("missing field {name}"))?;
    Ok(fields.remove(i).1)
}

/// TaskCreated v1 had `class_group_key` plus `class_names` (ids were positions from 1) and a
/// `callback` string that was empty for none. v2 has a `class_group` record with numbered
/// classes and a nullable `callback_url`.
fn task_created_v1_to_v2(value: Value) -> Result<Value, String> {
    let Value::Record(mut fields) = value else {
        return Err("not a record".into());
    };
    let key = take(&mut fields, "class_group_key")?;
    let Value::Array(names) = take(&mut fields, "class_names")? else {
        return Err("class_names is not an array".into());
    };
    let classes = names
        .into_iter()
        .enumerate()
        .map(|(i, name)| Value::Record(vec![("id".into(), Value::Long(i as i64 + 1)), ("name".into(), name)]))
        .collect();
    let callback = match take(&mut fields, "callback")? {
        Value::String(s) if s.is_empty() => Value::Union(0, Box::new(Value::Null)),
        Value::String(s) => Value::Union(1, Box::new(Value::String(s))),
        other => return Err(format!("callback is not a string: {other:?}")),
    };
    fields.push((
        "class_group".into(),
        Value::Record(vec![("key".into(), key), ("classes".into(), Value::Array(classes))]),
    ));
    fields.push(("callback_url".into(), callback));
    Ok(Value::Record(fields))
}
