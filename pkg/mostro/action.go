package mostro

// Action is a mostro-core action (kebab-case). Unknown values decode and
// re-encode unchanged.
type Action string

// The actions of mostro-core 0.14 (0.9.1 has the first 43; later versions
// add bond and cashu actions, listed too so they print by name).
const (
	ActionNewOrder                         Action = "new-order"
	ActionTakeSell                         Action = "take-sell"
	ActionTakeBuy                          Action = "take-buy"
	ActionPayInvoice                       Action = "pay-invoice"
	ActionFiatSent                         Action = "fiat-sent"
	ActionFiatSentOk                       Action = "fiat-sent-ok"
	ActionRelease                          Action = "release"
	ActionReleased                         Action = "released"
	ActionCancel                           Action = "cancel"
	ActionCanceled                         Action = "canceled"
	ActionCooperativeCancelInitiatedByYou  Action = "cooperative-cancel-initiated-by-you"
	ActionCooperativeCancelInitiatedByPeer Action = "cooperative-cancel-initiated-by-peer"
	ActionDisputeInitiatedByYou            Action = "dispute-initiated-by-you"
	ActionDisputeInitiatedByPeer           Action = "dispute-initiated-by-peer"
	ActionCooperativeCancelAccepted        Action = "cooperative-cancel-accepted"
	ActionBuyerInvoiceAccepted             Action = "buyer-invoice-accepted"
	ActionPurchaseCompleted                Action = "purchase-completed"
	ActionHoldInvoicePaymentAccepted       Action = "hold-invoice-payment-accepted"
	ActionHoldInvoicePaymentSettled        Action = "hold-invoice-payment-settled"
	ActionHoldInvoicePaymentCanceled       Action = "hold-invoice-payment-canceled"
	ActionWaitingSellerToPay               Action = "waiting-seller-to-pay"
	ActionWaitingBuyerInvoice              Action = "waiting-buyer-invoice"
	ActionAddInvoice                       Action = "add-invoice"
	ActionBuyerTookOrder                   Action = "buyer-took-order"
	ActionRate                             Action = "rate"
	ActionRateUser                         Action = "rate-user"
	ActionRateReceived                     Action = "rate-received"
	ActionCantDo                           Action = "cant-do"
	ActionDispute                          Action = "dispute"
	ActionAdminCancel                      Action = "admin-cancel"
	ActionAdminCanceled                    Action = "admin-canceled"
	ActionAdminSettle                      Action = "admin-settle"
	ActionAdminSettled                     Action = "admin-settled"
	ActionAdminAddSolver                   Action = "admin-add-solver"
	ActionAdminTakeDispute                 Action = "admin-take-dispute"
	ActionAdminTookDispute                 Action = "admin-took-dispute"
	ActionPaymentFailed                    Action = "payment-failed"
	ActionInvoiceUpdated                   Action = "invoice-updated"
	ActionSendDM                           Action = "send-dm"
	ActionTradePubkey                      Action = "trade-pubkey"
	ActionRestoreSession                   Action = "restore-session"
	ActionLastTradeIndex                   Action = "last-trade-index"
	ActionOrders                           Action = "orders"
	ActionPayBondInvoice                   Action = "pay-bond-invoice"
	ActionBondInvoiceAccepted              Action = "bond-invoice-accepted"
	ActionBondPayoutCompleted              Action = "bond-payout-completed"
	ActionBondSlashed                      Action = "bond-slashed"
	ActionAddBondInvoice                   Action = "add-bond-invoice"
	ActionAddCashuEscrow                   Action = "add-cashu-escrow"
	ActionCashuEscrowLocked                Action = "cashu-escrow-locked"
	ActionCashuPMSignature                 Action = "cashu-pm-signature"
)

// CantDoReason is a mostro-core CantDoReason (snake_case). Unknown values
// are kept.
type CantDoReason string

// The reasons of mostro-core 0.14.
const (
	CantDoInvalidSignature        CantDoReason = "invalid_signature"
	CantDoInvalidTradeIndex       CantDoReason = "invalid_trade_index"
	CantDoInvalidAmount           CantDoReason = "invalid_amount"
	CantDoInvalidInvoice          CantDoReason = "invalid_invoice"
	CantDoInvalidPaymentRequest   CantDoReason = "invalid_payment_request"
	CantDoInvalidPeer             CantDoReason = "invalid_peer"
	CantDoInvalidRating           CantDoReason = "invalid_rating"
	CantDoInvalidTextMessage      CantDoReason = "invalid_text_message"
	CantDoInvalidOrderKind        CantDoReason = "invalid_order_kind"
	CantDoInvalidOrderStatus      CantDoReason = "invalid_order_status"
	CantDoInvalidPubkey           CantDoReason = "invalid_pubkey"
	CantDoInvalidParameters       CantDoReason = "invalid_parameters"
	CantDoInvalidPayload          CantDoReason = "invalid_payload"
	CantDoOrderAlreadyCanceled    CantDoReason = "order_already_canceled"
	CantDoCantCreateUser          CantDoReason = "cant_create_user"
	CantDoIsNotYourOrder          CantDoReason = "is_not_your_order"
	CantDoNotAllowedByStatus      CantDoReason = "not_allowed_by_status"
	CantDoOutOfRangeFiatAmount    CantDoReason = "out_of_range_fiat_amount"
	CantDoOutOfRangeSatsAmount    CantDoReason = "out_of_range_sats_amount"
	CantDoPriceTooStale           CantDoReason = "price_too_stale"
	CantDoIsNotYourDispute        CantDoReason = "is_not_your_dispute"
	CantDoDisputeTakenByAdmin     CantDoReason = "dispute_taken_by_admin"
	CantDoNotAuthorized           CantDoReason = "not_authorized"
	CantDoDisputeCreationError    CantDoReason = "dispute_creation_error"
	CantDoNotFound                CantDoReason = "not_found"
	CantDoInvalidDisputeStatus    CantDoReason = "invalid_dispute_status"
	CantDoInvalidAction           CantDoReason = "invalid_action"
	CantDoPendingOrderExists      CantDoReason = "pending_order_exists"
	CantDoInvalidFiatCurrency     CantDoReason = "invalid_fiat_currency"
	CantDoTooManyRequests         CantDoReason = "too_many_requests"
	CantDoMaintenanceMode         CantDoReason = "maintenance_mode"
	CantDoInvalidCashuEscrowProof CantDoReason = "invalid_cashu_escrow_proof"
)

// DisputeStatus is a kind-38386 `s` tag value (mostro_core::dispute::Status,
// kebab-case). Unknown values are kept.
type DisputeStatus string

// The dispute statuses. Cooperatively-canceled is not in mostro-core 0.14
// but newer nodes may publish it; it is terminal.
const (
	DisputeInitiated             DisputeStatus = "initiated"
	DisputeInProgress            DisputeStatus = "in-progress"
	DisputeSellerRefunded        DisputeStatus = "seller-refunded"
	DisputeSettled               DisputeStatus = "settled"
	DisputeReleased              DisputeStatus = "released"
	DisputeCooperativelyCanceled DisputeStatus = "cooperatively-canceled"
)

// Terminal reports whether the status ends a dispute.
func (s DisputeStatus) Terminal() bool {
	switch s {
	case DisputeSellerRefunded, DisputeSettled, DisputeReleased, DisputeCooperativelyCanceled:
		return true
	}
	return false
}
