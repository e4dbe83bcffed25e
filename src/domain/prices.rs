//! Model prices (USD per million tokens) and the cost of one call, in exact decimals.

use super::Usd;
use anyhow::{Context, bail};
use rust_decimal::Decimal;
use serde_json::Value;
use std::{collections::BTreeMap, path::Path, str::FromStr};

/// Price of one model, in USD per one million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelPrice {
    pub input_per_million: Decimal,
    pub output_per_million: Decimal,
}

impl ModelPrice {
    /// Cost of a call, rounded half away from zero to six places.
    pub fn cost(&self, prompt_tokens: u32, completion_tokens: u32) -> Usd {
        let micro_dollars = Decimal::from(prompt_tokens) * self.input_per_million
            + Decimal::from(completion_tokens) * self.output_per_million;
        Usd::new(micro_dollars / Decimal::from(1_000_000)).rounded()
    }
}

/// A price from the file, through the number's text so 0.15 stays exactly 0.15.
fn money(model: &str, name: &str, value: &Value) -> anyhow::Result<Decimal> {
    let text = match value {
        Value::Number(number) => number.to_string(),
        Value::String(text) => text.clone(),
        other => bail!("model {model:?}: {name:?} is not a number: {other}"),
    };
    let price = Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .with_context(|| format!("model {model:?}: {name:?} = {text}"))?;
    if price.is_sign_negative() {
        bail!("model {model:?}: {name:?} must not be negative");
    }
    Ok(price)
}

#[derive(Debug, Clone, PartialEq)]
pub struct PriceTable {
    prices: BTreeMap<String, ModelPrice>,
    /// The prices file's `"*"` entry: what a model with no price of its own is charged.
    unknown_model: Option<ModelPrice>,
}

/// A model's price, and whether it was assumed for want of one of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pricing {
    pub price: ModelPrice,
    pub assumed: bool,
}

/// The key of a prices file's entry for models it does not list.
pub const UNKNOWN_MODEL_KEY: &str = "*";

/// Published list prices; `MODEL_PRICES_FILE` adds models or overrides these.
const BUILTIN: &[(&str, &str, &str)] = &[
    ("gpt-4o-mini", "0.15", "0.60"),
    ("gpt-4o", "2.50", "10.00"),
    ("gpt-4.1", "2.00", "8.00"),
    ("gpt-4.1-mini", "0.40", "1.60"),
    ("gpt-4.1-nano", "0.10", "0.40"),
    ("gpt-3.5-turbo", "0.50", "1.50"),
    ("o4-mini", "1.10", "4.40"),
    ("text-embedding-3-small", "0.02", "0"),
    ("text-embedding-3-large", "0.13", "0"),
];

impl PriceTable {
    pub fn builtin() -> Self {
        let prices = BUILTIN
            .iter()
            .map(|(model, input, output)| {
                let price = ModelPrice {
                    input_per_million: Decimal::from_str(input).unwrap_or_default(),
                    output_per_million: Decimal::from_str(output).unwrap_or_default(),
                };
                ((*model).to_owned(), price)
            })
            .collect();
        Self {
            prices,
            unknown_model: None,
        }
    }

    /// Adds the prices of a JSON file: `{"model": {"input": 0.15, "output": 0.60}, …}`.
    /// Adds the prices of a JSON file, USD per million tokens, model by model:
    /// `{"model": {"input": 0.15, "output": 0.60}}`. Also read: the field names
    /// `input_per_million`/`output_per_million`, `input_per_1m`/`output_per_1m` and
    /// `prompt`/`completion`, a pair `[input, output]`, and the whole map wrapped in
    /// `{"models": …}`, since price lists come from many tools.
    pub fn with_file(mut self, path: &Path) -> anyhow::Result<Self> {
        let raw = std::fs::read_to_string(path).context("reading the prices file")?;
        let mut parsed: serde_json::Map<String, Value> =
            serde_json::from_str(&raw).context("parsing the prices file as a JSON object")?;
        if let Some(Value::Object(models)) = parsed.get("models") {
            parsed = models.clone();
        }
        for (model, entry) in parsed {
            let price = match &entry {
                Value::Array(pair) if pair.len() == 2 => ModelPrice {
                    input_per_million: money(&model, "input", &pair[0])?,
                    output_per_million: money(&model, "output", &pair[1])?,
                },
                Value::Object(fields) => {
                    let field = |names: [&str; 4]| -> anyhow::Result<Decimal> {
                        let (name, value) = names
                            .iter()
                            .find_map(|name| fields.get(*name).map(|value| (*name, value)))
                            .with_context(|| {
                                format!("model {model:?} has no {:?} price", names[0])
                            })?;
                        money(&model, name, value)
                    };
                    ModelPrice {
                        input_per_million: field([
                            "input",
                            "input_per_million",
                            "input_per_1m",
                            "prompt",
                        ])?,
                        output_per_million: field([
                            "output",
                            "output_per_million",
                            "output_per_1m",
                            "completion",
                        ])?,
                    }
                }
                other => {
                    bail!("model {model:?}: expected {{\"input\": …, \"output\": …}}, got {other}")
                }
            };
            if model == UNKNOWN_MODEL_KEY {
                self.unknown_model = Some(price);
            } else {
                self.prices.insert(model, price);
            }
        }
        Ok(self)
    }

    /// The model's own price, else the one assumed for unknown models: the prices file's
    /// `"*"` entry, or the highest known input and output prices, so that a model
    /// nobody priced can never switch budget enforcement off.
    pub fn pricing(&self, model: &str) -> Pricing {
        if let Some(price) = self.price(model) {
            return Pricing {
                price,
                assumed: false,
            };
        }
        let price = self.unknown_model.unwrap_or_else(|| ModelPrice {
            input_per_million: self
                .prices
                .values()
                .map(|price| price.input_per_million)
                .max()
                .unwrap_or_default(),
            output_per_million: self
                .prices
                .values()
                .map(|price| price.output_per_million)
                .max()
                .unwrap_or_default(),
        });
        Pricing {
            price,
            assumed: true,
        }
    }

    /// Exact name first, else the longest known prefix, since providers answer with
    /// dated names (`gpt-4o-mini-2024-07-18`) for the models we asked by alias.
    pub fn price(&self, model: &str) -> Option<ModelPrice> {
        if let Some(price) = self.prices.get(model) {
            return Some(*price);
        }
        self.prices
            .iter()
            .filter(|(known, _)| model.starts_with(known.as_str()))
            .max_by_key(|(known, _)| known.len())
            .map(|(_, price)| *price)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn dec(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap_or_else(|_| panic!("bad decimal {text}"))
    }

    fn usd(text: &str) -> Usd {
        Usd::new(dec(text))
    }

    #[test]
    fn spec_example_costs_exactly_seventy_three_micro_dollars() {
        let price = PriceTable::builtin().price("gpt-4o-mini");
        // 412 × 0.15 + 18 × 0.60 = 72.6 micro-dollars, rounded to 0.000073.
        assert_eq!(price.map(|p| p.cost(412, 18)), Some(usd("0.000073")));
    }

    #[test]
    fn costs_are_exact_decimals_not_floats() {
        let price = ModelPrice {
            input_per_million: dec("0.1"),
            output_per_million: dec("0.2"),
        };
        // 0.1 + 0.2 in f64 is 0.30000000000000004; in decimals it is 0.3.
        assert_eq!(price.cost(1_000_000, 1_000_000), usd("0.3"));
        assert_eq!(
            price.cost(5, 0),
            usd("0.000001"),
            "0.0000005 rounds half up"
        );
        assert_eq!(price.cost(4, 0), usd("0"), "0.0000004 rounds down");
    }

    #[test]
    fn gpt_4o_prices_are_built_in() {
        let table = PriceTable::builtin();
        assert_eq!(
            table.price("gpt-4o").map(|p| p.cost(1_000_000, 1_000_000)),
            Some(usd("12.5"))
        );
    }

    #[test]
    fn dated_model_names_take_the_longest_known_prefix() {
        let table = PriceTable::builtin();
        assert_eq!(
            table.price("gpt-4o-mini-2024-07-18"),
            table.price("gpt-4o-mini")
        );
        assert_eq!(table.price("gpt-4o-2024-08-06"), table.price("gpt-4o"));
        assert_eq!(table.price("llama3"), None);
    }

    #[test]
    fn a_prices_file_adds_and_overrides_models() -> anyhow::Result<()> {
        let path = std::env::temp_dir().join(format!("prices-{}.json", uuid::Uuid::new_v4()));
        let mut file = std::fs::File::create(&path)?;
        write!(
            file,
            r#"{{"llama3": {{"input": 0.05, "output": "0.08"}}, "gpt-4o": {{"input": 1, "output": 2}}}}"#
        )?;
        let table = PriceTable::builtin().with_file(&path)?;
        std::fs::remove_file(&path)?;
        assert_eq!(
            table.price("llama3").map(|p| p.cost(1_000_000, 1_000_000)),
            Some(usd("0.13"))
        );
        assert_eq!(
            table.price("gpt-4o").map(|p| p.cost(1_000_000, 0)),
            Some(usd("1"))
        );
        assert!(table.price("gpt-4o-mini").is_some(), "built-ins stay");
        Ok(())
    }

    #[test]
    fn other_common_price_file_shapes_are_read_too() -> anyhow::Result<()> {
        let path = std::env::temp_dir().join(format!("prices-{}.json", uuid::Uuid::new_v4()));
        std::fs::write(
            &path,
            r#"{"models": {"a": [1, 2], "b": {"input_per_million": 3, "output_per_million": 4},
                           "c": {"prompt": 5, "completion": 6}}}"#,
        )?;
        let table = PriceTable::builtin().with_file(&path)?;
        std::fs::remove_file(&path)?;
        let per_million = |model: &str| {
            table
                .price(model)
                .map(|p| (p.cost(1_000_000, 0), p.cost(0, 1_000_000)))
        };
        assert_eq!(per_million("a"), Some((usd("1"), usd("2"))));
        assert_eq!(per_million("b"), Some((usd("3"), usd("4"))));
        assert_eq!(per_million("c"), Some((usd("5"), usd("6"))));
        Ok(())
    }

    #[test]
    fn an_unknown_model_is_charged_the_highest_known_prices_or_the_files_default()
    -> anyhow::Result<()> {
        let table = PriceTable::builtin();
        let pricing = table.pricing("llama3");
        assert!(pricing.assumed);
        assert_eq!(
            pricing.price.cost(1_000_000, 1_000_000),
            usd("12.5"),
            "gpt-4o's 2.50 in and 10.00 out are the highest built-in prices"
        );
        assert!(!table.pricing("gpt-4o-mini").assumed);
        let path = std::env::temp_dir().join(format!("prices-{}.json", uuid::Uuid::new_v4()));
        std::fs::write(&path, r#"{"*": {"input": 1, "output": 1}}"#)?;
        let table = PriceTable::builtin().with_file(&path)?;
        std::fs::remove_file(&path)?;
        assert_eq!(table.pricing("llama3").price.cost(1_000_000, 0), usd("1"));
        assert_eq!(table.price("*"), None, "the default is not a model");
        Ok(())
    }

    #[test]
    fn a_malformed_prices_file_is_refused() -> anyhow::Result<()> {
        let path = std::env::temp_dir().join(format!("prices-{}.json", uuid::Uuid::new_v4()));
        std::fs::write(&path, r#"{"m": {"input": -1, "output": 1}}"#)?;
        assert!(PriceTable::builtin().with_file(&path).is_err());
        std::fs::write(&path, r#"{"m": {"input": 1}}"#)?;
        assert!(PriceTable::builtin().with_file(&path).is_err());
        std::fs::remove_file(&path)?;
        Ok(())
    }
}
