//! What a contact export is as the emulator's External Contacts (`dedupd emulator
//! --seed-external-contacts`, `dedupd demo`).

use anyhow::Context;

/// The External Contacts of a contact export, as the emulator's seed body: the record id as
/// the contact id, names, the e-mail as work e-mail, the phone as cell phone, the address.
pub fn external_contacts(path: &std::path::Path) -> anyhow::Result<(serde_json::Value, usize)> {
    use dedupd_core::matching::Column;
    let loaded = dedupd_feed::export::load(path, &dedupd_feed::export::InputConfig::default())
        .with_context(|| format!("cannot read {}", path.display()))?;
    let contacts: Vec<serde_json::Value> = loaded
        .records
        .iter()
        .map(|r| {
            let mut c = serde_json::json!({"id": r.id()});
            let mut put = |key: &str, v: Option<&str>| {
                if let Some(v) = v {
                    c[key] = v.into();
                }
            };
            put("firstName", r.get(Column::FirstName));
            put("lastName", r.get(Column::LastName));
            put("workEmail", r.get(Column::Email));
            if let Some(phone) = r.get(Column::Phone) {
                c["cellPhone"] = serde_json::json!({"e164": phone});
            }
            let address: serde_json::Map<String, serde_json::Value> = [
                ("address1", Column::Street),
                ("city", Column::City),
                ("state", Column::Region),
                ("postalCode", Column::Postcode),
                ("countryCode", Column::Country),
            ]
            .into_iter()
            .filter_map(|(k, col)| r.get(col).map(|v| (k.to_owned(), v.into())))
            .collect();
            if !address.is_empty() {
                c["address"] = address.into();
            }
            c
        })
        .collect();
    // What was refused, as merge plan reports it (line, record, field, reason; no values).
    for r in &loaded.rejects {
        eprintln!(
            "{}: line {}{}: {}: {}",
            path.display(),
            r.line,
            r.record_id
                .as_deref()
                .map(|id| format!(" (record {id})"))
                .unwrap_or_default(),
            r.field,
            r.reason
        );
    }
    let refused = loaded.rejects.len();
    Ok((serde_json::json!({ "externalContacts": contacts }), refused))
}
