//! A server shaped like HubSpot's CRM objects API (v3).
