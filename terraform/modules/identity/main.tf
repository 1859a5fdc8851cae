# Identity: a Cognito user pool as the OIDC issuer (RAG_OIDC_ISSUER), a resource server
# carrying the API's scopes (rag_serving/auth.py), a machine client for service callers,
# and the client the load balancer uses to sign people in to the Dagster UI.
terraform {
  required_providers {
    aws = { source = "hashicorp/aws" }
  }
}

locals {
  scopes = {
    "rag:query"      = "search, ask, list and read documents"
    "rag:ingest"     = "store sources and reindex documents"
    "rag:governance" = "erasure requests and the audit trail"
    "rag:admin"      = "settings and cache flushes"
  }
}

resource "aws_cognito_user_pool" "this" {
  name                     = var.name
  deletion_protection      = var.deletion_protection ? "ACTIVE" : "INACTIVE"
  mfa_configuration        = "ON"
  auto_verified_attributes = ["email"]
  username_attributes      = ["email"]
  software_token_mfa_configuration {
    enabled = true
  }
  admin_create_user_config {
    allow_admin_create_user_only = true
  }
  password_policy {
    minimum_length    = 14
    require_lowercase = true
    require_uppercase = true
    require_numbers   = true
    require_symbols   = true
  }
  user_pool_add_ons {
    advanced_security_mode = "ENFORCED"
  }
}

resource "aws_cognito_user_pool_domain" "this" {
  domain       = var.domain_prefix
  user_pool_id = aws_cognito_user_pool.this.id
}

resource "aws_cognito_resource_server" "api" {
  identifier   = var.api_identifier
  name         = "${var.name}-api"
  user_pool_id = aws_cognito_user_pool.this.id
  dynamic "scope" {
    for_each = local.scopes
    content {
      scope_name        = scope.key
      scope_description = scope.value
    }
  }
}

# Service callers (evaluation, automation) get tokens with the client-credentials grant.
resource "aws_cognito_user_pool_client" "machine" {
  name                                 = "${var.name}-machine"
  user_pool_id                         = aws_cognito_user_pool.this.id
  generate_secret                      = true
  allowed_oauth_flows_user_pool_client = true
  allowed_oauth_flows                  = ["client_credentials"]
  allowed_oauth_scopes                 = [for scope in keys(local.scopes) : "${var.api_identifier}/${scope}" if scope == "rag:query"]
  supported_identity_providers         = ["COGNITO"]
  access_token_validity                = 60
  token_validity_units {
    access_token = "minutes"
  }
  depends_on = [aws_cognito_resource_server.api]
}

# The load balancer signs people in to the Dagster UI with this client.
resource "aws_cognito_user_pool_client" "dagster_ui" {
  name                                 = "${var.name}-dagster-ui"
  user_pool_id                         = aws_cognito_user_pool.this.id
  generate_secret                      = true
  allowed_oauth_flows_user_pool_client = true
  allowed_oauth_flows                  = ["code"]
  allowed_oauth_scopes                 = ["openid", "email"]
  callback_urls                        = ["https://${var.dagster_host}/oauth2/idpresponse"]
  supported_identity_providers         = ["COGNITO"]
  prevent_user_existence_errors        = "ENABLED"
}
