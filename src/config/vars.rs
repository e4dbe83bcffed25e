//! Reading the environment: each lookup names its variable in every error.

use super::{ConfigError, Secret, redact_url};
use crate::domain::Usd;
use rust_decimal::Decimal;
use std::{fmt, str::FromStr, time::Duration};

/// Lookup helpers that name the variable in every error.
pub(super) struct Vars<'a, F: Fn(&str) -> Option<String>>(pub(super) &'a F);

impl<F: Fn(&str) -> Option<String>> Vars<'_, F> {
    /// A set-but-blank variable counts as unset, as `.env` templates often leave them so.
    pub(super) fn optional(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    }

    /// As set, spaces kept (a prefix such as "query: " ends in one); unset is empty.
    pub(super) fn raw(&self, name: &str) -> String {
        (self.0)(name).unwrap_or_default()
    }

    /// "QUERY,DOCUMENT": the two values of an `input_type` field, neither empty.
    pub(super) fn input_type(
        &self,
        name: &'static str,
    ) -> Result<Option<(String, String)>, ConfigError> {
        let Some(value) = self.optional(name) else {
            return Ok(None);
        };
        match value.split_once(',') {
            Some((query, document))
                if !query.trim().is_empty()
                    && !document.trim().is_empty()
                    && !document.contains(',') =>
            {
                Ok(Some((query.trim().to_owned(), document.trim().to_owned())))
            }
            _ => Err(ConfigError {
                variable: name,
                reason: format!(
                    "must be two values, for queries and for documents, as in \"query,passage\" (got {value:?})"
                ),
            }),
        }
    }

    pub(super) fn string(&self, name: &str, default: &str) -> String {
        self.optional(name).unwrap_or_else(|| default.to_owned())
    }

    /// An http(s) URL without its trailing slash.
    pub(super) fn http_url(
        &self,
        name: &'static str,
        default: &str,
    ) -> Result<String, ConfigError> {
        let url = self.string(name, default).trim_end_matches('/').to_owned();
        if url::Url::parse(&url)
            .map(|url| !matches!(url.scheme(), "http" | "https"))
            .unwrap_or(true)
        {
            return Err(ConfigError {
                variable: name,
                reason: format!("{:?} is not an http(s) URL", redact_url(&url)),
            });
        }
        Ok(url)
    }

    pub(super) fn parse<T: FromStr>(
        &self,
        name: &'static str,
        default: &str,
    ) -> Result<T, ConfigError>
    where
        T::Err: fmt::Display,
    {
        let raw = self.string(name, default);
        raw.parse().map_err(|error| ConfigError {
            variable: name,
            reason: format!("{raw:?}: {error}"),
        })
    }

    pub(super) fn positive(&self, name: &'static str, default: u32) -> Result<u32, ConfigError> {
        let value: u32 = self.parse(name, &default.to_string())?;
        if value == 0 {
            return Err(ConfigError {
                variable: name,
                reason: "must be greater than 0".into(),
            });
        }
        Ok(value)
    }

    /// A whole number from `min` to `max`.
    pub(super) fn within(
        &self,
        name: &'static str,
        default: u32,
        min: u32,
        max: u32,
    ) -> Result<u32, ConfigError> {
        let value: u32 = self.parse(name, &default.to_string())?;
        if !(min..=max).contains(&value) {
            return Err(ConfigError {
                variable: name,
                reason: format!("must be from {min} to {max}"),
            });
        }
        Ok(value)
    }

    pub(super) fn millis(&self, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
        let value: u64 = self.parse(name, &default.to_string())?;
        if value == 0 {
            return Err(ConfigError {
                variable: name,
                reason: "must be greater than 0".into(),
            });
        }
        Ok(Duration::from_millis(value))
    }

    pub(super) fn money(
        &self,
        name: &'static str,
        default: Option<&str>,
    ) -> Result<Option<Usd>, ConfigError> {
        let Some(raw) = self.optional(name).or(default.map(str::to_owned)) else {
            return Ok(None);
        };
        let value = Decimal::from_str(&raw).map_err(|error| ConfigError {
            variable: name,
            reason: format!("{raw:?}: {error}"),
        })?;
        if value.is_sign_negative() {
            return Err(ConfigError {
                variable: name,
                reason: "must not be negative".into(),
            });
        }
        Ok(Some(Usd::new(value)))
    }

    pub(super) fn keys(&self, name: &str) -> Vec<Secret> {
        self.optional(name)
            .map(|raw| {
                raw.split(',')
                    .map(str::trim)
                    .filter(|key| !key.is_empty())
                    .map(Secret::new)
                    .collect()
            })
            .unwrap_or_default()
    }
}
