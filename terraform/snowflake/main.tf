# Snowflake least privilege for the warehouse sync (RAG_WAREHOUSE_TARGET=snowflake): one
# role that reads the selected schemas and nothing else, its own warehouse, and a service
# user that signs in with a key pair (no password). Apply it with a SECURITYADMIN/SYSADMIN
# profile; the private key goes into the <name>/snowflake secret (docs/deployment.md).
#
# A separate root module: its provider is not in the filesystem mirror where `make lint`
# runs, so only `terraform fmt` and checkov check it there (`terraform init` would need the
# registry).
terraform {
  required_version = ">= 1.10"
  required_providers {
    snowflake = {
      source  = "snowflakedb/snowflake"
      version = "2.11.0"
    }
  }
}

provider "snowflake" {
  role = "SECURITYADMIN"
}

resource "snowflake_account_role" "sync" {
  name    = var.role_name
  comment = "RAG platform warehouse sync: read-only on ${join(", ", var.read_schemas)}"
}

resource "snowflake_warehouse" "sync" {
  name                = var.warehouse_name
  warehouse_size      = "XSMALL"
  auto_suspend        = 60
  auto_resume         = true
  initially_suspended = true
  comment             = "RAG platform warehouse sync"
}

resource "snowflake_service_user" "sync" {
  name              = var.user_name
  default_role      = snowflake_account_role.sync.name
  default_warehouse = snowflake_warehouse.sync.name
  rsa_public_key    = var.rsa_public_key
  comment           = "RAG platform warehouse sync (key-pair authentication only)"
}

resource "snowflake_grant_account_role" "sync_user" {
  role_name = snowflake_account_role.sync.name
  user_name = snowflake_service_user.sync.name
}

resource "snowflake_grant_privileges_to_account_role" "warehouse" {
  account_role_name = snowflake_account_role.sync.name
  privileges        = ["USAGE", "OPERATE"]
  on_account_object {
    object_type = "WAREHOUSE"
    object_name = snowflake_warehouse.sync.name
  }
}

resource "snowflake_grant_privileges_to_account_role" "database" {
  account_role_name = snowflake_account_role.sync.name
  privileges        = ["USAGE"]
  on_account_object {
    object_type = "DATABASE"
    object_name = var.database
  }
}

resource "snowflake_grant_privileges_to_account_role" "schema" {
  for_each          = toset(var.read_schemas)
  account_role_name = snowflake_account_role.sync.name
  privileges        = ["USAGE"]
  on_schema {
    schema_name = "\"${var.database}\".\"${each.key}\""
  }
}

locals {
  # SELECT on the tables and views there now and on those created later, per schema.
  object_grants = {
    for pair in setproduct(var.read_schemas, ["TABLES", "VIEWS"], ["all", "future"]) :
    join("/", pair) => { schema = pair[0], objects = pair[1], when = pair[2] }
  }
}

resource "snowflake_grant_privileges_to_account_role" "read" {
  for_each          = local.object_grants
  account_role_name = snowflake_account_role.sync.name
  privileges        = ["SELECT"]
  on_schema_object {
    dynamic "all" {
      for_each = each.value.when == "all" ? [1] : []
      content {
        object_type_plural = each.value.objects
        in_schema          = "\"${var.database}\".\"${each.value.schema}\""
      }
    }
    dynamic "future" {
      for_each = each.value.when == "future" ? [1] : []
      content {
        object_type_plural = each.value.objects
        in_schema          = "\"${var.database}\".\"${each.value.schema}\""
      }
    }
  }
}
