//! A server shaped like Salesforce's REST API.
