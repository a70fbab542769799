//! Errors of the CXone client: the shared client's [`Error`](dedupd_http_client::Error) with
//! CXone's error body, [`CxoneErrorBody`], which reads every shape CXone answers with:
//!
//! - DFO: `{"errors":[{"field","message","parameters","errorCode"}],"uid"}` (NICE's SDK reads
//!   `errors[0].message`);
//! - Admin (lists, DNC) and the auth service: `{"error","errorDescription"}`;
//! - the token endpoint as OAuth writes it: `{"error","error_description"}`;
//! - anything else with a `message`.
//!
//! Every error carries the method, the path (without the query string, which may hold a phone
//! number), the status and the platform's message.

use dedupd_http_client::ApiErrorBody;
use serde::Deserialize;

/// One entry of a DFO error body's `errors`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DfoErrorItem {
    /// The field in error.
    pub field: Option<String>,
    /// The message.
    pub message: Option<String>,
    /// Machine-readable code.
    pub error_code: Option<String>,
}

/// A CXone error body, whichever family answered. Unknown fields are ignored; a body that is
/// not JSON (e.g. `No known way to render data`) parses as the default, empty body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct CxoneErrorBody {
    /// DFO's errors.
    pub errors: Vec<DfoErrorItem>,
    /// DFO's request id.
    pub uid: Option<String>,
    /// Admin / auth error code (`InvalidSkillId`, `invalid_grant`, …). Only a string is kept.
    #[serde(deserialize_with = "string_only")]
    pub error: Option<String>,
    /// Admin error message.
    #[serde(rename = "errorDescription")]
    pub error_description: Option<String>,
    /// OAuth's spelling of the message.
    #[serde(rename = "error_description")]
    pub oauth_error_description: Option<String>,
    /// A plain message.
    pub message: Option<String>,
}

fn string_only<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(v.as_str().map(str::to_owned))
}

impl CxoneErrorBody {
    /// The machine-readable code: DFO's `errors[0].errorCode`, else `error`.
    pub fn error_code(&self) -> Option<&str> {
        self.errors
            .iter()
            .find_map(|e| e.error_code.as_deref())
            .or(self.error.as_deref())
    }

    /// The platform's message: `errors[0].message`, `errorDescription`,
    /// `error_description`, `message`, in that order.
    pub fn platform_message(&self) -> Option<&str> {
        self.errors
            .iter()
            .find_map(|e| e.message.as_deref())
            .or(self.error_description.as_deref())
            .or(self.oauth_error_description.as_deref())
            .or(self.message.as_deref())
    }
}

impl ApiErrorBody for CxoneErrorBody {
    fn summary(&self) -> String {
        match (self.error_code(), self.platform_message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.to_owned(),
            (None, Some(message)) => message.to_owned(),
            (None, None) => "no error body".to_owned(),
        }
    }

    fn reference(&self) -> Option<String> {
        self.uid.as_ref().map(|u| format!("uid {u}"))
    }

    fn code(&self) -> Option<&str> {
        self.error_code()
    }

    fn message(&self) -> Option<&str> {
        self.platform_message()
    }
}

/// Errors of the CXone client.
pub type Error = dedupd_http_client::Error<CxoneErrorBody>;
/// An error answer of CXone.
pub type ApiError = dedupd_http_client::ApiError<CxoneErrorBody>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_s_error_body_parses() {
        let dfo: CxoneErrorBody = serde_json::from_str(
            r#"{"errors":[{"field":"customerToMerge.id","message":"customerToMerge.id is required.",
                "parameters":{},"errorCode":"InvalidParameter"}],"uid":"u-1"}"#,
        )
        .unwrap();
        assert_eq!(
            dfo.summary(),
            "InvalidParameter: customerToMerge.id is required."
        );
        assert_eq!(dfo.reference().as_deref(), Some("uid u-1"));

        let admin: CxoneErrorBody = serde_json::from_str(
            r#"{"error":"InvalidSkillId","errorDescription":"skillId is required."}"#,
        )
        .unwrap();
        assert_eq!(admin.summary(), "InvalidSkillId: skillId is required.");

        let oauth: CxoneErrorBody =
            serde_json::from_str(r#"{"error":"invalid_grant","error_description":"bad key"}"#)
                .unwrap();
        assert_eq!(oauth.summary(), "invalid_grant: bad key");

        // `error` as an object (some gateways) is ignored, not a parse failure.
        let odd: CxoneErrorBody =
            serde_json::from_str(r#"{"error":{"x":1},"message":"nope"}"#).unwrap();
        assert_eq!(odd.summary(), "nope");
        assert!(serde_json::from_str::<CxoneErrorBody>("No known way to render data").is_err());
        assert_eq!(CxoneErrorBody::default().summary(), "no error body");
    }
}
