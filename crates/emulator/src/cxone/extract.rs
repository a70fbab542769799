//! Request extractors of the CXone routes: malformed input is answered in the error shape of
//! the path's family ([`Family::of`]).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{CxError, Family};
use crate::util::{BodyProblem, json_body};

/// Path parameters; a malformed path is a 400.
pub(crate) struct Pth<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Pth<T> {
    type Rejection = CxError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let family = Family::of(parts.uri.path());
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| Pth(v))
            .map_err(|e| {
                CxError::new(
                    family,
                    StatusCode::BAD_REQUEST,
                    "InvalidParameter",
                    format!("Invalid path parameter: {e}"),
                )
            })
    }
}

/// Query parameters as pairs, in order. `name[]` and `name` are the same list; an empty pair
/// (the SDK's leading `?&`) is ignored.
#[derive(Debug, Default)]
pub(crate) struct Q {
    pub(crate) pairs: Vec<(String, String)>,
    family: Option<Family>,
}

impl<S: Send + Sync> FromRequestParts<S> for Q {
    type Rejection = CxError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let family = Family::of(parts.uri.path());
        Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map(|Query(pairs)| Q {
                pairs: pairs.into_iter().filter(|(k, _)| !k.is_empty()).collect(),
                family: Some(family),
            })
            .map_err(|e| {
                CxError::new(
                    family,
                    StatusCode::BAD_REQUEST,
                    "InvalidParameter",
                    format!("Invalid query string: {e}"),
                )
            })
    }
}

impl Q {
    fn family(&self) -> Family {
        self.family.unwrap_or(Family::Dfo)
    }

    fn invalid(&self, name: &str, message: String) -> CxError {
        match self.family() {
            Family::Dfo => CxError::dfo_invalid(name, message),
            f => CxError::new(f, StatusCode::BAD_REQUEST, "InvalidParameter", message),
        }
    }

    /// The last value of `name`, if any.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        crate::util::last_value(&self.pairs, name)
    }

    /// Every value of list parameter `name` (`name[]=a&name[]=b`, `name=a&name=b`).
    pub(crate) fn list(&self, name: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name || k.strip_suffix("[]") == Some(name))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// [`Q::list`], lower-cased (for case-blind matching).
    pub(crate) fn list_lower(&self, name: &str) -> Vec<String> {
        self.list(name).iter().map(|v| v.to_lowercase()).collect()
    }

    /// `skip` (default 0) and `top` (default `default_top`, at most `cap`); negative = 0.
    pub(crate) fn skip_top(
        &self,
        default_top: usize,
        cap: usize,
    ) -> Result<(usize, usize), CxError> {
        let skip = usize::try_from(self.int("skip", 0)?.max(0)).unwrap_or(0);
        let top = match self.get("top").filter(|t| !t.is_empty()) {
            None => default_top,
            Some(_) => usize::try_from(self.int("top", 0)?.max(0)).unwrap_or(usize::MAX),
        };
        Ok((skip, top.min(cap)))
    }

    /// A whole number, `default` when absent or empty.
    pub(crate) fn int(&self, name: &str, default: i64) -> Result<i64, CxError> {
        match self.get(name).map(str::trim) {
            None | Some("") => Ok(default),
            Some(v) => v.parse().map_err(|_| {
                self.invalid(name, format!("Parameter {name} must be a whole number."))
            }),
        }
    }

    /// `true`/`false` (any case; `1`/`0` too), `None` when absent or empty.
    pub(crate) fn bool(&self, name: &str) -> Result<Option<bool>, CxError> {
        match self.get(name).map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => Ok(Some(false)),
            Some(_) => Err(self.invalid(name, format!("Parameter {name} must be true or false."))),
        }
    }
}

/// A JSON request body. `Content-Type` must be JSON when present (NICE's SDK sends
/// `application/json`, with or without a charset); an empty body or `null` is `None`.
pub(crate) struct J(pub(crate) Option<Value>);

impl<S: Send + Sync> FromRequest<S> for J {
    type Rejection = CxError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let family = Family::of(req.uri().path());
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            CxError::new(
                family,
                e.status(),
                "InvalidBody",
                format!("Could not read the request body: {e}"),
            )
        })?;
        match json_body(&bytes, content_type.as_deref()) {
            Ok(v) => Ok(J(v)),
            Err(BodyProblem::NotJson(ct)) => Err(CxError::new(
                family,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                format!("Content-Type {ct} is not supported; send application/json."),
            )),
            Err(BodyProblem::Malformed(e)) => Err(CxError::new(
                family,
                StatusCode::BAD_REQUEST,
                "InvalidBody",
                format!("The request body is not valid JSON: {e}"),
            )),
        }
    }
}

/// Reads a string field of a JSON object; `None` when absent or null, a 400 naming `field`
/// when present with another type.
pub(crate) fn opt_str<'a>(
    family: Family,
    obj: &'a Value,
    field: &str,
) -> Result<Option<&'a str>, CxError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(invalid(family, field, format!("{field} must be a string."))),
    }
}

/// A required non-empty string field.
pub(crate) fn req_str<'a>(family: Family, obj: &'a Value, field: &str) -> Result<&'a str, CxError> {
    match opt_str(family, obj, field)? {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(invalid(family, field, format!("{field} is required."))),
    }
}

/// A 400 naming `field`, in `family`'s shape.
pub(crate) fn invalid(family: Family, field: &str, message: String) -> CxError {
    match family {
        Family::Dfo => CxError::dfo_invalid(field, message),
        f => CxError::new(f, StatusCode::BAD_REQUEST, "InvalidParameter", message),
    }
}
