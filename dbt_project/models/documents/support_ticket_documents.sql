-- One searchable document per ticket (its latest version): a Markdown body, the groups that
-- may read it and the people it is about. rag_core.adapters.warehouse.cdc diffs this table
-- to emit events.
{%- set nl = "chr(10)" %}

with latest as (
    select *
    from {{ ref('stg_support_tickets') }}
    qualify row_number() over (partition by ticket_id order by updated_at desc) = 1
)

select
    ticket_id as row_key,
    'Support ticket ' || ticket_id || ': ' || subject as title,
    '## ' || subject || {{ nl }} || {{ nl }}
        || '- Ticket: ' || ticket_id || {{ nl }}
        || '- Product: ' || coalesce(product, 'unknown') || {{ nl }}
        || '- Status: ' || coalesce(status, 'unknown') || {{ nl }}
        || '- Priority: ' || coalesce(priority, 'unknown') || {{ nl }}
        || '- Team: ' || team || {{ nl }} || {{ nl }}
        || '### Customer question' || {{ nl }} || {{ nl }}
        || coalesce(question, '(no question recorded)') || {{ nl }} || {{ nl }}
        || '### Resolution' || {{ nl }} || {{ nl }}
        || coalesce(resolution, 'Not resolved yet.') as body,
    'support,team:' || team as acl,
    coalesce(customer_email, '') as subjects,
    updated_at
from latest
