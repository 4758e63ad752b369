//! What is compared: one HTTP answer (status, headers, decoded body) and the
//! request that produced it.

/// One response as received, with a decoded body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Exchange {
    pub status: u16,
    /// Header names in lower case, in the order received; repeated names
    /// appear once per value.
    pub headers: Vec<(String, String)>,
    /// The body after content-encoding was removed.
    pub body: Vec<u8>,
}

impl Exchange {
    /// All values of a header, joined as HTTP joins them.
    pub fn header(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self
            .headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    }

    pub fn content_type(&self) -> String {
        self.header("content-type")
            .unwrap_or_default()
            .to_ascii_lowercase()
    }
}

/// The request a pair of answers belongs to, as stored with a diff.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestSummary {
    pub method: String,
    /// Normalized path with query.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}
