variable "database" {
  description = "RAG_SNOWFLAKE_DATABASE."
  type        = string
  default     = "RAG"
}

variable "read_schemas" {
  description = "The only schemas the sync may read: where the dbt document models land."
  type        = list(string)
  default     = ["PUBLIC"]
}

variable "role_name" {
  description = "RAG_SNOWFLAKE_ROLE."
  type        = string
  default     = "RAG_SYNC"
}

variable "warehouse_name" {
  description = "RAG_SNOWFLAKE_WAREHOUSE."
  type        = string
  default     = "RAG_SYNC_WH"
}

variable "user_name" {
  description = "RAG_SNOWFLAKE_USER."
  type        = string
  default     = "RAG_SYNC"
}

variable "rsa_public_key" {
  description = "Public half of the service user's key pair (PEM body, no header lines)."
  type        = string
}
