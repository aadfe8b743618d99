"""HL7 v2: the message log (facility + control id -> ACK, for resends), the facility patient and appointment links

Revision ID: int0002
Revises: int0001
Create Date: 2026-12-06
"""

from alembic import op
import sqlalchemy as sa


revision = 'int0002'
down_revision = 'int0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('hl7_messages',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('facility', sa.String(length=64), nullable=False),
    sa.Column('control_id', sa.String(length=64), nullable=False),
    sa.Column('message_type', sa.String(length=16), nullable=False),
    sa.Column('received_via', sa.String(length=200), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('original', sa.Text(), nullable=False),
    sa.Column('ack_code', sa.String(length=2), nullable=True),
    sa.Column('ack', sa.Text(), nullable=True),
    sa.Column('member_id', sa.Uuid(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_hl7_messages')),
    sa.UniqueConstraint('facility', 'control_id', name='uq_hl7_messages_control_id')
    )
    op.create_table('hl7_patients',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('facility', sa.String(length=64), nullable=False),
    sa.Column('patient_index', sa.String(length=40), nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('linked_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_hl7_patients')),
    sa.UniqueConstraint('facility', 'patient_index', name='uq_hl7_patients_facility_patient')
    )
    op.create_table('hl7_appointments',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('facility', sa.String(length=64), nullable=False),
    sa.Column('placer_id', sa.String(length=100), nullable=False),
    sa.Column('appointment_id', sa.Uuid(), nullable=False),
    sa.Column('booked_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_hl7_appointments')),
    sa.UniqueConstraint('facility', 'placer_id', name='uq_hl7_appointments_placer')
    )


def downgrade() -> None:
    op.drop_table('hl7_appointments')
    op.drop_table('hl7_patients')
    op.drop_table('hl7_messages')
