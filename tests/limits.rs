//! Limits: header deadline (slowloris), body limit, in-flight cap, memory
//! after rejected requests.
