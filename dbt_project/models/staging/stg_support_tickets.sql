-- Typed, trimmed tickets; empty strings become nulls so documents can say what is missing.
select
    trim(ticket_id) as ticket_id,
    lower(trim(customer_email)) as customer_email,
    trim(product) as product,
    trim(subject) as subject,
    trim(question) as question,
    nullif(trim(resolution), '') as resolution,
    lower(trim(status)) as status,
    lower(trim(priority)) as priority,
    lower(trim(team)) as team,
    cast(trim(updated_at) as timestamp) as updated_at
from {{ source('raw', 'support_tickets') }}
