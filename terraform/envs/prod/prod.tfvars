# Example values: replace with the prod account's.
account_id           = "111111111111"
allowed_client_cidrs = ["0.0.0.0/0"]
certificate_arn      = "arn:aws:acm:eu-west-2:111111111111:certificate/00000000-0000-0000-0000-000000000001"
api_host             = "rag.example.com"
dagster_host         = "dagster.rag.example.com"
github_repository    = "example-org/rag-platform"
